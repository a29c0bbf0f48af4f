"""Evaluation: vectorised retrieval and classification metrics, zero-shot classification, PPR."""

from .metrics import average_precision, auroc, mrr, ppr, recall_at_k, topk_accuracy
from .zeroshot import class_prototypes, zero_shot_predict

__all__ = ["recall_at_k", "topk_accuracy", "mrr", "average_precision", "auroc", "ppr",
           "class_prototypes", "zero_shot_predict"]
