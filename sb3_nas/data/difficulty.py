"""A cheap difficulty gauge for a task: logistic regression on downsampled pixels, no neural network.

``python -m sb3_nas.data.difficulty`` prints it for every registered dataset.
"""

from __future__ import annotations

import numpy as np

from sb3_nas.data.base import ImageDataset
from sb3_nas.data.builtin import EVAL_TASKS, TRAIN_TASKS
from sb3_nas.data.imageops import resize_bilinear
from sb3_nas.data.registry import list_datasets, load_dataset


def linear_probe_accuracy(dataset: str | ImageDataset, size: int = 16, seed: int = 0) -> float:
    """Test-third accuracy of a logistic regression fit on the training two thirds at size×size pixels."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    dataset = load_dataset(dataset)
    features = resize_bilinear(dataset.images, size, size).reshape(len(dataset), -1) / 255.0
    train, test = dataset.split(seed=seed)
    # one BLAS thread: several threads on these small problems run ten times slower on a shared CPU
    with threadpool_limits(limits=1):
        classifier = LogisticRegression(max_iter=2000).fit(features[train], dataset.labels[train])
    return float(classifier.score(features[test], dataset.labels[test]))


def chance_accuracy(dataset: str | ImageDataset) -> float:
    """Accuracy of always answering the most frequent class."""
    labels = load_dataset(dataset).labels
    return float(np.bincount(labels).max() / len(labels))


def main() -> None:
    """Print each registered dataset's size, role, chance level and linear-probe accuracy."""
    print(
        f"{'dataset':<12} {'role':<6} {'images':>6} {'shape':<12} {'classes':>7} {'chance':>6} {'probe':>6}"
    )
    for name in list_datasets():
        dataset = load_dataset(name)
        role = "train" if name in TRAIN_TASKS else "eval" if name in EVAL_TASKS else "extra"
        shape = "x".join(map(str, dataset.image_shape))
        print(
            f"{name:<12} {role:<6} {len(dataset):>6} {shape:<12} {dataset.n_classes:>7} "
            f"{chance_accuracy(dataset):>6.3f} {linear_probe_accuracy(dataset):>6.3f}"
        )


if __name__ == "__main__":
    main()
