"""Prediction on a user's own images: preprocessing that travels with the model, and a Predictor that runs
an exported file. Importing it needs only numpy, Pillow and (to run) onnxruntime: no torch."""
