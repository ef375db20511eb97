"""Model registry and architectures. Each module below registers its builders on import."""

# Registration order is listing order: the paper's architectures, zoo's own, then timm's.
from zoo.models import mlp, cnn, lenet, alexnet, resnet, zoonet, timm_models  # noqa: F401,I001
from zoo.models.registry import (PAPER_MATRIX, ModelEntry, adapts_channels, check_supported, classifier,
                                 create_model, get_model_entry, list_models, list_pairs, register_model, supports)
from zoo.models.tta import TTAS, tta_of, with_tta

__all__ = ["PAPER_MATRIX", "ModelEntry", "adapts_channels", "check_supported", "classifier", "create_model",
           "get_model_entry",
           "list_models", "list_pairs", "register_model", "supports", "TTAS", "tta_of", "with_tta"]
