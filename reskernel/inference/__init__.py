"""Inference with the kernels: kernel ridge regression and NTK gradient-descent predictions."""
