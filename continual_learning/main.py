"""Continual learning of a task sequence (Fig. 2, Fig. 3, Table 1, Fig. 4a,b, Supp. Fig. 6,
Fig. 5c-e).

Example (Fig. 2d):
    python continual_learning/main.py --net bnn --hidden-layers 4096 4096 --lr 0.005 \
        --decay 1e-7 --meta 1.35 --epochs-per-task 40 --task-sequence pMNIST pMNIST pMNIST \
        pMNIST pMNIST pMNIST
"""
import sys

from continual_learning.data_utils import EXPERIMENT
from metaplastic.continual import main

if __name__ == "__main__":
    sys.exit(main(EXPERIMENT))
