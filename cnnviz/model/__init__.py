"""Trained CNNs: the registry of shipped and uploaded models, EfficientNet-Lite0, feature maps and Grad-CAM."""
