"""The datasets' names per model family, defined once and torch-free: the API validates jobs against them
without loading the datasets' code."""

from __future__ import annotations

# Generated or shipped here (backend/data/builtin.py loads them), never downloaded.
BUILTIN = {"vision": ("digits", "shapes"), "text": ("synthetic_sentiment", "intents")}
# By name through torchvision / Hugging Face datasets (backend/data/public.py describes and loads them).
PUBLIC = {"vision": ("cifar10", "cifar100", "fashion_mnist"), "text": ("sst2", "imdb", "ag_news")}
# What a job of each family uses when it names no dataset.
DEFAULT = {"vision": "digits", "text": "synthetic_sentiment"}
