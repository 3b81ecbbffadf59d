import streamlit as st

st.title("convolution")
st.info("This page is being built.")
