"""Models nobody here wrote: ``transformers`` architectures from small configs, built on meta by the
introspection (no weights, no downloads)."""

from __future__ import annotations

from typing import Any

from torch import nn


def _hf(config_cls: str, model_cls: str, **kw: Any) -> Any:
    import transformers

    config = getattr(transformers, config_cls)(**kw)
    return getattr(transformers, model_cls)(config)


TINY = {"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 1000}


def bert() -> nn.Module:
    return _hf("BertConfig", "BertModel", **TINY, num_hidden_layers=4, max_position_embeddings=64)


def gpt2(layers: int = 4) -> nn.Module:
    return _hf(
        "GPT2Config",
        "GPT2LMHeadModel",
        n_embd=64,
        n_layer=layers,
        n_head=4,
        vocab_size=1000,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )


def gpt2_2() -> nn.Module:
    return gpt2(2)


def gpt2_8() -> nn.Module:
    return gpt2(8)


def llama() -> nn.Module:
    return _hf("LlamaConfig", "LlamaForCausalLM", **TINY, num_hidden_layers=4, num_key_value_heads=2)


def t5() -> nn.Module:
    return _hf(
        "T5Config",
        "T5ForConditionalGeneration",
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=3,
        num_heads=4,
        vocab_size=1000,
    )


def vit() -> nn.Module:
    return _hf(
        "ViTConfig",
        "ViTModel",
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=32,
        patch_size=8,
    )


def hf_resnet() -> nn.Module:
    return _hf(
        "ResNetConfig",
        "ResNetModel",
        embedding_size=16,
        hidden_sizes=[16, 32, 64, 128],
        depths=[3, 4, 6, 3],
        layer_type="bottleneck",
    )


def albert() -> nn.Module:
    return _hf("AlbertConfig", "AlbertModel", **TINY, embedding_size=32, num_hidden_layers=6)


def mixtral() -> nn.Module:
    return _hf(
        "MixtralConfig",
        "MixtralForCausalLM",
        **TINY,
        num_hidden_layers=2,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
    )


def dpt() -> nn.Module:
    """Depth estimation: a ViT whose four layers feed a neck that reassembles them at four resolutions
    and fuses them back up (the first fusion layer has no residual branch to run)."""
    return _hf(
        "DPTConfig",
        "DPTForDepthEstimation",
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 64],
        fusion_hidden_size=16,
        reassemble_factors=[4, 2, 1, 0.5],
    )


def upernet() -> nn.Module:
    """Segmentation: a ConvNeXt backbone's four stages into a feature pyramid (UperNet decode head)."""
    import transformers

    backbone = transformers.ConvNextConfig(
        hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], out_features=["stage1", "stage2", "stage3", "stage4"]
    )
    config = transformers.UperNetConfig(
        backbone_config=backbone, hidden_size=16, num_labels=3, use_auxiliary_head=False
    )
    return transformers.UperNetForSemanticSegmentation(config)


def swin2sr() -> nn.Module:
    """Super-resolution: Swin transformer layers (tokens) inside convolution residuals (images)."""
    return _hf(
        "Swin2SRConfig",
        "Swin2SRForImageSuperResolution",
        image_size=16,
        patch_size=1,
        embed_dim=16,
        depths=[2, 2],
        num_heads=[2, 2],
        window_size=4,
        upscale=2,
    )


def wav2vec2_layerdrop() -> nn.Module:
    """Wav2Vec2 with LayerDrop 0.5: in training mode its forward skips each layer at random."""
    return _hf(
        "Wav2Vec2Config",
        "Wav2Vec2Model",
        hidden_size=32,
        num_hidden_layers=6,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 2),
        conv_kernel=(10, 3),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
        layerdrop=0.5,
    )
