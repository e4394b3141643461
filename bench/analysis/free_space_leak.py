#!/usr/bin/env python3
"""How much class a free latent space (the CDVAE's z_u) can hide while it keeps an item's style.

Issue 15 asks that 5-NN class accuracy in z_u stay at or below 40%. This script measures two things
with the same 5-NN protocol as the bench (held-out queries against the training items, Euclidean,
majority of 5):

1. A reference that no model trained: *class-relative* codes of the real images. Per class, the
   image's coordinates along that class's own first D principal directions, each coordinate mapped
   through the class's empirical quantiles to N(0, 1), so every class has the same marginals (what
   an ideal z_u under p(z_u) = N(0, I) would give each class). What 5-NN still finds in them is the
   class-specific joint structure of D dimensions of style.
2. Optionally, a trained model's latents saved by `npx tsx bench/run.ts --only classes --case cdvae
   --save-latents PREFIX`: z_u's 5-NN accuracy, and what is left after removing each class's mean,
   whitening each class, or giving each class the same marginals; and a linear (LDA) classifier.

Needs numpy (Debian: python3-numpy). Usage:
  python3 bench/analysis/free_space_leak.py [--fashion DIR] [--latents PREFIX-cdvae]
"""
import argparse
import gzip
import json
from statistics import NormalDist

import numpy as np

QUERIES = 2000
to_normal = np.vectorize(NormalDist().inv_cdf)


def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def knn_accuracy(refs, ref_labels, queries, query_labels, k=5):
    correct = 0
    for start in range(0, len(queries), 250):
        block = queries[start:start + 250]
        distances = (block ** 2).sum(1)[:, None] + (refs ** 2).sum(1)[None] - 2 * block @ refs.T
        nearest = np.argpartition(distances, k, axis=1)[:, :k]
        votes = [np.bincount(row, minlength=ref_labels.max() + 1).argmax() for row in ref_labels[nearest]]
        correct += int((np.array(votes) == query_labels[start:start + 250]).sum())
    return correct / len(queries)


def same_marginals(train_codes, codes):
    """Each column through the training codes' empirical quantiles to N(0, 1)."""
    out = np.empty_like(codes)
    for d in range(codes.shape[1]):
        ref = np.sort(train_codes[:, d])
        out[:, d] = to_normal((np.searchsorted(ref, codes[:, d]) + 0.5) / (len(ref) + 1))
    return out


def class_relative_codes(fashion, dims):
    x = idx(f'{fashion}/train-images-idx3-ubyte.gz', 16).reshape(-1, 784) / 255.0
    y = idx(f'{fashion}/train-labels-idx1-ubyte.gz', 8).astype(int)
    xq = idx(f'{fashion}/t10k-images-idx3-ubyte.gz', 16).reshape(-1, 784)[:QUERIES] / 255.0
    yq = idx(f'{fashion}/t10k-labels-idx1-ubyte.gz', 8).astype(int)[:QUERIES]
    results = {}
    for dim in dims:
        codes, query_codes = np.zeros((len(x), dim)), np.zeros((len(xq), dim))
        for c in range(y.max() + 1):
            members, query_members = y == c, yq == c
            mean = x[members].mean(0)
            basis = np.linalg.svd(x[members] - mean, full_matrices=False)[2][:dim].T
            train_c = (x[members] - mean) @ basis
            codes[members] = same_marginals(train_c, train_c)
            query_codes[query_members] = same_marginals(train_c, (xq[query_members] - mean) @ basis)
        results[dim] = knn_accuracy(codes, y, query_codes, yq)
    return results


def latent_leak(prefix):
    labels = np.fromfile(f'{prefix}-labels.i32', np.int32)
    train = np.fromfile(f'{prefix}-train.i32', np.int32)
    held = np.fromfile(f'{prefix}-held.i32', np.int32)
    z = np.fromfile(f'{prefix}-z_u.f32', np.float32).reshape(len(labels), -1).astype(np.float64)
    stride = max(1, len(held) / QUERIES)
    queries = held[(np.arange(min(QUERIES, len(held))) * stride).astype(int)]
    classes = labels.max() + 1
    score = lambda codes: knn_accuracy(codes[train], labels[train], codes[queries], labels[queries])
    means = np.stack([z[train][labels[train] == c].mean(0) for c in range(classes)])
    centred = z - means[labels]
    whitened, marginals = np.empty_like(z), np.empty_like(z)
    for c in range(classes):
        members, train_members = labels == c, train[labels[train] == c]
        values, vectors = np.linalg.eigh(np.cov(centred[train_members].T))
        whitened[members] = centred[members] @ vectors @ np.diag(values ** -0.5) @ vectors.T
        marginals[members] = same_marginals(z[train_members], z[members])
    pooled = np.linalg.inv(np.cov(centred[train].T))
    lda = np.stack([(((z[queries] - means[c]) @ pooled) * (z[queries] - means[c])).sum(1) for c in range(classes)], 1).argmin(1)
    variances = np.linalg.eigvalsh(np.cov(z[train].T))[::-1]
    return {
        'z_u_dims': z.shape[1],
        'knn5': score(z),
        'knn5_class_means_removed': score(centred),
        'knn5_each_class_whitened': score(whitened),
        'knn5_each_class_same_marginals': score(marginals),
        'lda_accuracy': float((lda == labels[queries]).mean()),
        'variance_share_per_principal_direction': [round(float(v), 3) for v in variances / variances.sum()],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--fashion', default='/usr/share/datasets/fashion-mnist')
    parser.add_argument('--latents', help='PREFIX-<case> of files written by the bench with --save-latents')
    parser.add_argument('--dims', default='2,4,6,8')
    args = parser.parse_args()
    report = {'class_relative_pca_knn5': class_relative_codes(args.fashion, [int(d) for d in args.dims.split(',')])}
    if args.latents:
        report['latents'] = latent_leak(args.latents)
    print(json.dumps(report, indent=2))


if __name__ == '__main__':
    main()
