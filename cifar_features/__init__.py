"""Fig. 4(e-h): BNNs learning CIFAR-10 / CIFAR-100 features of an ImageNet ResNet-18 in sequence.

generate_features.py makes the features (once per dataset); main.py learns task sequences on them
with the continual-learning command line of metaplastic.experiments.continual.
"""
