"""Home: what cnnviz is, who it is for, and how to use each page in a lecture."""

from pathlib import Path

import streamlit as st

from ui.router import ensure_app_shell

ensure_app_shell()  # before heavy imports: a bookmark opened first on a fresh server goes through app.py

from ui import present, workspace  # noqa: E402

# A small picture of each page (presenter-mode screenshots of the demo pictures, see docs/screenshots).
THUMBS = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "thumbs"
TOUR = [
    ("pages/neuron.py", "1 · Neuron and activation", "neuron"),
    ("pages/convolution.py", "2 · Convolution and pooling", "convolution"),
    ("pages/feature_maps.py", "3 · Feature maps", "feature_maps"),
    ("pages/trainer.py", "4 · Train your own classifier", "trainer"),
    ("pages/scratch.py", "Build and train a CNN from scratch", "scratch"),
    ("pages/audit.py", "5 · Audit where it fails", "audit"),
]

st.title("cnnviz — how a convolutional neural network sees")
st.page_link("pages/neuron.py", label="**Start with page 1 · Neuron and activation**", icon="👉")
with st.container(key="home_tour"):
    for row in (TOUR[:3], TOUR[3:]):
        for column, (path, title, stem) in zip(st.columns(3, gap="medium"), row):
            with column:
                thumb = THUMBS / f"{stem}.png"
                if thumb.is_file():
                    st.image(str(thumb), alt=f"A picture of the page {title}", width="stretch")
                st.page_link(path, label=title)

present.explain(
    """
A convolutional neural network (CNN) turns pixels into a label by stacking many small,
simple steps. This app lets you **look at every step**, **train one on your own images**,
and **probe where it fails**.

**Who it is for**
- *A lecture hall*: each page is one part of a lecture; big pictures, one idea at a time.
  Settings you change are kept in the address bar, so the same view can be reopened later.
- *A humanities seminar*: bring your own collection (paintings sorted by topic, say) and ask
  what the machine's categories do to it — what does it say about an abstract painting,
  or about something that is not a painting at all?
- *Visitors of a public demo*: nobody else sees what you upload or train.
"""
)
st.caption(workspace.where_things_go())

st.subheader("How to use each page")
present.explain(
    """
1. **Neuron and activation** — let the hall find weights that turn 3 and 2 into 7.5 (the error
   chart shows each attempt); then add an activation function and watch the point slide along its
   curve. The heat map shows that one neuron only ever draws a straight line, so it cannot solve
   XOR or circles, while a two-layer network trained beside it can. End with softmax: scores to
   probabilities, sharper or flatter with the temperature. Weights, activation and temperature
   stay in the address bar: bookmark a view to reopen it in the next lecture.
2. **Convolution and pooling** — slide a small kernel over a picture: pick a preset (blur,
   sharpen, Sobel edges, outline, emboss) or type your own weights. Change stride, padding,
   ReLU and pooling and watch the shapes and the output-size formula follow. Step through one
   output pixel by hand (patch × kernel = products, summed), see why "convolution" in deep
   learning is cross-correlation, and how a Conv2D filter sums over the colour channels.
   Every setting is in the address bar: copy the link to reopen the same view.
3. **Feature maps** — a real trained network (ImageNet's EfficientNet-Lite0, the small
   Fashion-MNIST CNNs, or your own `.keras` model) looks at your image. Read the layer list
   (shapes, strides, receptive fields), see every channel of a layer as one picture, enlarge a
   channel over the image, see the first layer's kernels, the top answers, and Grad-CAM: where
   the evidence for a class was found. Compare two images on the same layer.
4. **Train your own classifier** — Teachable Machine for your own collection: make a card per
   class and add images (files, a folder, the webcam, or a zip in the lesson's `training/<class>/`
   and `testing/` layout), or load the squares-triangles-circles demo. A pretrained network turns
   each image into 1 280 numbers and a small head learns your classes in seconds; watch loss and
   accuracy per epoch, read the confusion matrix and the misclassified images, test new images
   (a folder becomes a CSV of predicted topics), and download the model as `.keras` + `.tflite`.
5. **Audit where it fails** — the lesson's last question as an experiment: what does a classifier
   say about an abstract painting, or about something that is not a painting at all? Pick any model
   (ImageNet, the bundled CNNs, yours), name a reference set (what it was made for: your trainer's
   validation images, uploads, a zip, or generated pictures) and probe sets (abstract works,
   photographs, the webcam, or seeded Mondrian/Rothko/Kandinsky/Pollock-like probes). Compare which
   categories each set gets, how confident the model is, and whether confidence or a distance in the
   network's features tells probes from references (AUROC); set an abstain threshold; look at the most
   confident failures with Grad-CAM; change only the style of one image (grayscale, blur, painterly…)
   and watch the label move. Download an HTML report with questions for the seminar, and a CSV.
"""
)
st.info("Every page works offline. Presenter mode (sidebar) makes the type large enough for a hall.", icon="👈")
