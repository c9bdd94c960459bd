"""Continual learning on ResNet-18 features of CIFAR-10 / CIFAR-100 (Fig. 4e-h).

First make the features (once per dataset; see generate_features.py --help):
    python cifar_features/generate_features.py --dataset cifar10 --weights resnet18-f37072fd.pth
    python cifar_features/generate_features.py --dataset cifar100 --weights resnet18-f37072fd.pth
They are written to, and read from, <data-root>/features/ (or $METAPLASTIC_CIFAR_FEATURES).
By default (as published) the ResNet runs with its BatchNorm in training mode, on batches of 500
images in data-set order; --resnet-mode eval makes features with its running statistics instead.
Training refuses features of another mode than --features-resnet-mode (default train) and files
that do not record their mode.

Fig. 4(e, f), CIFAR-10 vehicles then animals, without / with metaplasticity:
    python cifar_features/main.py --net 'bnn' --norm 'bn' --decay 1e-8 --in-size 512 \
        --hidden-layers 2048 --out-size 10 --lr 0.005 --meta 0.0 --epochs-per-task 10 \
        --task-sequence 'vehicles' 'animals'
    (same with --meta 1.8)
Fig. 4(g, h), CIFAR-100 in two subsets of 50 classes, domain scenario:
    python cifar_features/main.py --net 'bnn' --norm 'in' --scenario 'domain' --in-size 512 \
        --hidden-layers 2048 2048 --out-size 100 --lr 0.005 --meta 0.0 --epochs-per-task 20 \
        --task-sequence 'cifar100-2'
    (same with --meta 1.3)

Every other flag is the continual-learning command line's (metaplastic/continual.py). Feature
processing per example: (x - mean) / var as published; --feature-scale std divides by the
standard deviation instead. Training batch 100 (CIFAR-10 tasks) or 20 (CIFAR-100 tasks).
"""
import sys

from cifar_features.data_utils import EXPERIMENT
from metaplastic.continual import main

if __name__ == "__main__":
    sys.exit(main(EXPERIMENT))
