"""traindoc: documentation-as-code for PyTorch training pipelines.

The core works without MkDocs: spec -> facts -> templates -> Markdown/Mermaid, and a runner whose
results record the templates read too. Importing this package never imports torch.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
