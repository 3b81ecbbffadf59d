import streamlit as st

st.title("neuron")
st.info("This page is being built.")
