"""The experiment loops: the epoch runner, task sequences, streams, and the continual-learning
experiment that continual_learning/, mnist_usps/ and cifar_features/ share."""
