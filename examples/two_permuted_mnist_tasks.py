"""The metaplastic BNN on two permuted-MNIST tasks, with the package's public names only
(docs/API.md). About a minute on a laptop CPU; prints the accuracy matrix and the forgetting.

    python examples/two_permuted_mnist_tasks.py [--meta 1.35] [--epochs 1] [--hidden 512]
"""
import argparse

import numpy as np
import torch

import metaplastic as mp

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--meta", type=float, default=1.35, help="m (0: no metaplasticity)")
parser.add_argument("--epochs", type=int, default=1, help="epochs per task")
parser.add_argument("--hidden", type=int, default=512, help="units per hidden layer")
parser.add_argument("--data-root", default=None, help="default: the clone's data/ folder")
args = parser.parse_args()

torch.manual_seed(0)
mnist = mp.load_image_dataset("MNIST", args.data_root)            # 784 floats in [0, 1] per image
permutations = mp.draw_permutations(2, 784, seed=0)
tasks = [(mnist.train_x[:, p], mnist.train_y, mnist.test_x[:, p], mnist.test_y)
         for p in permutations]

model = mp.BNN([784, args.hidden, args.hidden, 10])             # sign weights, BatchNorm, sign units
optimizer = mp.make_optimizer(model, lr=0.005, meta=args.meta)    # m on the hidden weights
generator = torch.Generator().manual_seed(0)                      # the order of the batches
accuracy = np.zeros((2, 2))                                       # R[l, i]: task i after task l
for learned, (train_x, train_y, _, _) in enumerate(tasks):
    for _ in range(args.epochs):
        mp.train_epoch(model, optimizer, train_x, train_y, batch_size=100, generator=generator)
    for i, (_, _, test_x, test_y) in enumerate(tasks):
        accuracy[learned, i] = mp.evaluate(model, test_x, test_y, batch_size=1000).accuracy
    print(f"after task {learned + 1}: " + "  ".join(f"task {i + 1} {a:6.2f} %"
                                                  for i, a in enumerate(accuracy[learned])))
metrics = mp.sequence_metrics(accuracy)
print(f"m = {args.meta}: average accuracy {metrics.average_accuracy:.2f} %, backward transfer "
      f"{metrics.backward_transfer:+.2f}, forgetting {metrics.forgetting:.2f}")
