"""Small random-initialised models of the real architectures, saved in the formats the loaders read.

For tests, benchmarks and dry runs of a model pipeline without downloading anything: an open_clip
CLIP (hf-hub-style directory), a GPT-2 with a byte-level BPE tokenizer trained on the spot, a
sentence-transformers BERT directory, a DINOv2 directory, and the aesthetic and NSFW heads in their
published state-dict layouts. The scores mean nothing; the code paths are the real ones.

>>> save_open_clip("/tmp/models/clip"); ImageEmbeddings(model_path="/tmp/models/clip")
"""
from __future__ import annotations

import json
import os

_WORDS = ("the a of and to in is for on with as by at from that this it be are was were an or which image "
          "picture photo text document page figure table city river mountain science history recipe paper "
          "cat dog tree house car water light music art game team market").split()


def _corpus(n: int = 400) -> list[str]:
    import random

    rng = random.Random(0)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 20))) for _ in range(n)]


def save_open_clip(path: str, embed_dim: int = 16, image_size: int = 32, seed: int = 0, architecture=None) -> str:
    """An open_clip CLIP as `open_clip_config.json` + `open_clip_model.safetensors` (tiny ViT and text tower by
    default; `architecture` names a built-in config such as ViT-B-32 for full size)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    if architecture:
        config = open_clip.get_model_config(architecture)
    else:
        config = {"embed_dim": embed_dim,
                  "vision_cfg": {"image_size": image_size, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
                  "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    model = open_clip.CLIP(**config)
    os.makedirs(path, exist_ok=True)
    preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}
    with open(os.path.join(path, "open_clip_config.json"), "w") as f:
        json.dump({"model_cfg": config, "preprocess_cfg": preprocess}, f)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(path, "open_clip_model.safetensors"))
    return path


def _byte_level_tokenizer(path: str, model_max_length: int, **special: str):
    """A byte-level BPE tokenizer trained on the generated corpus, saved to `path` (`<|endoftext|>` is bos/eos)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    tokens = dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", **special)
    bpe.train_from_iterator(_corpus(), vocab_size=300, min_frequency=1, special_tokens=list(dict.fromkeys(tokens.values())))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=model_max_length, **tokens)
    tokenizer.save_pretrained(path)
    return tokenizer


def save_gpt2(path: str, seed: int = 0) -> str:
    """A 2-layer GPT-2 and a byte-level BPE tokenizer trained on a small generated corpus (`save_pretrained`)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    os.makedirs(path, exist_ok=True)
    tokenizer = _byte_level_tokenizer(path, 128, unk_token="<|endoftext|>")
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    GPT2LMHeadModel(config).eval().save_pretrained(path, safe_serialization=True)
    return path


def save_sentence_bert(path: str, seed: int = 0, pooling: str = "mean") -> str:
    """A sentence-transformers directory: a 2-layer BERT with a WordPiece tokenizer trained here, a pooling
    module config (`mean` or `cls`) and `modules.json`."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    os.makedirs(os.path.join(path, "1_Pooling"), exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(_corpus(), vocab_size=200, min_frequency=1)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]", model_max_length=64)
    tokenizer.save_pretrained(path)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(path, safe_serialization=True)
    with open(os.path.join(path, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}], f)
    with open(os.path.join(path, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
                   "pooling_mode_mean_tokens": pooling == "mean"}, f)
    return path


def save_hf_clip(path: str, seed: int = 0) -> str:
    """A transformers CLIPModel (the family NeMo Curator's CLIP filter loads) with a BPE tokenizer trained here
    and a CLIP image processor (`save_pretrained`)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    torch.manual_seed(seed)
    os.makedirs(path, exist_ok=True)
    tokenizer = _byte_level_tokenizer(path, 77, pad_token="<pad>")
    config = CLIPConfig(
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "vocab_size": len(tokenizer), "max_position_embeddings": 77,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16)
    CLIPModel(config).eval().save_pretrained(path, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(path)
    return path


def save_dinov2(path: str, seed: int = 0) -> str:
    """A 2-layer DINOv2 with its image processor (`save_pretrained`), an image-only embedding model."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(seed)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=28, patch_size=14)
    Dinov2Model(config).eval().save_pretrained(path, safe_serialization=True)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}, do_center_crop=True,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(path)
    return path


def save_head(kind: str, path: str, width: int, seed: int = 0) -> str:
    """An aesthetic or NSFW head of input `width` in its published layout, as safetensors."""
    import torch
    from safetensors.torch import save_file

    from mmcurate.annotate.heads import HEADS

    torch.manual_seed(seed)
    head = HEADS[kind][0](width)
    if kind == "nsfw":  # a fitted standardisation, as in the released weights
        head.norm.mean.uniform_(-0.1, 0.1)
        head.norm.variance.uniform_(0.5, 2.0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, path)
    return path


def save_fasttext(path: str) -> str:
    """A supervised fastText classifier (`__label__hq` / `__label__cc`) trained on generated lines."""
    from mmcurate.annotate.quality import fit_fasttext

    fit_fasttext((f"__label__{'hq' if i % 2 else 'cc'} {text}" for i, text in enumerate(_corpus())), path,
                 epoch=2, dim=16, lr=0.5)
    return path


def save_all(root: str) -> str:
    """Every tiny model under `root` and `root/annotate.yaml`, an annotate config running each model stage on
    them (on the CPU): `mmcurate annotate --config root/annotate.yaml`. Returns the config's path."""
    import yaml

    clip = save_open_clip(os.path.join(root, "clip"))
    gpt2 = save_gpt2(os.path.join(root, "gpt2"))
    cpu = {"device": "cpu"}
    stages = [
        {"stage": "image_embeddings", "model_path": clip, **cpu},
        {"stage": "text_embeddings", "model_path": clip, **cpu},
        {"stage": "pair_scores"}, {"stage": "image_alignment"}, {"stage": "sample_embeddings"},
        {"stage": "clusters", "n_clusters": 4}, {"stage": "cluster_summary"},
        {"stage": "aesthetic_scores", "model_path": save_head("aesthetic", os.path.join(root, "aesthetic.safetensors"), 16), **cpu},
        {"stage": "nsfw_scores", "model_path": save_head("nsfw", os.path.join(root, "nsfw.safetensors"), 16), **cpu},
        {"stage": "text_perplexity", "model_path": gpt2, **cpu}, {"stage": "document_perplexity"},
        {"stage": "text_tokens", "model_path": gpt2},
        {"stage": "quality_scores", "model_path": save_fasttext(os.path.join(root, "quality.bin"))},
    ]
    path = os.path.join(root, "annotate.yaml")
    with open(path, "w") as f:
        f.write("# Model stages on tiny random-initialised models (mmcurate tiny-models): the scores mean nothing.\n")
        yaml.safe_dump({"stages": stages}, f, sort_keys=False)
    return path
