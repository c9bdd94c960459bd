"""MNIST -> USPS with a binarized conv net (Fig. 4c,d): ``python mnist_usps/main.py``."""
