"""Evaluation: vectorised retrieval and classification metrics, zero-shot classification, PPR,
benchmark readers for the standard public layouts, zero-shot prompt templates, and the harness
that puts the pretrained encoder, TextME and its ablations side by side."""

from .datasets import TASKS, ClassificationSet, RetrievalSet, TaskInfo, load_task
from .harness import EvalReport, evaluate, item_embeddings
from .metrics import (
    auroc,
    average_precision,
    caption_retrieval,
    f1_binary,
    mrr,
    ppr,
    recall_at_k,
    relevance_from_labels,
    relevance_retrieval,
    topk_accuracy,
)
from .templates import DOMAINS, TEMPLATES, get_templates
from .zeroshot import class_prototypes, prompt_prototypes, zero_shot_predict

__all__ = ["recall_at_k", "caption_retrieval", "relevance_retrieval", "relevance_from_labels",
           "topk_accuracy", "mrr", "average_precision", "auroc", "f1_binary", "ppr",
           "class_prototypes", "prompt_prototypes", "zero_shot_predict",
           "RetrievalSet", "ClassificationSet", "TaskInfo", "TASKS", "load_task",
           "get_templates", "TEMPLATES", "DOMAINS", "evaluate", "EvalReport", "item_embeddings"]
