"""Stream CIFAR-10 (Fig. 4b stream): a binarized VGG learning CIFAR-10 cut into parts."""
