"""Causal language models from a local `save_pretrained` directory: token log-likelihoods and generation.

Loaded with `local_files_only=True` and safetensors only; a tokenizer without a pad token pads with
its end-of-text token (GPT-2). Log-probabilities are computed in float32 whatever the model's dtype.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmcurate.models.encoders import require_path
from mmcurate.models.runner import load_once, task_device, torch_dtype


@dataclass
class CausalLM:
    """A causal LM and its tokenizer on `device`."""

    model: Any
    tokenizer: Any
    device: str

    @property
    def context(self) -> int:
        """The most positions the model takes (longer inputs are truncated to it)."""
        config = self.model.config
        return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 2048)

    def token_nll(self, texts: list[str], max_tokens: int) -> list[tuple[int, float]]:
        """(predicted tokens, summed negative log-likelihood in nats) per text, each truncated to max_tokens
        (and to the model's context);
        a text of one token has nothing to predict: (0, 0.0)."""
        import torch

        self.tokenizer.padding_side = "right"
        tokens = self.tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                                max_length=min(max_tokens, self.context)).to(self.device)
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        predicted = mask[:, 1:].to(logp.dtype)
        nll = -(logp * predicted).sum(dim=1)
        return [(int(n), float(v)) for n, v in zip(predicted.sum(dim=1).tolist(), nll.tolist())]

    def prompt(self, template: str, text: str, max_prompt_tokens: int, max_new_tokens: int) -> str:
        """`template` with `{text}` filled in, the text (never the instruction around it) cut to fit
        min(max_prompt_tokens, context - max_new_tokens) tokens."""
        room = min(max_prompt_tokens, self.context - max_new_tokens)
        budget = room - len(self.tokenizer(template.replace("{text}", ""))["input_ids"])
        if budget < 1:
            raise ValueError(f"the prompt template alone fills the {room} tokens a prompt may take")
        ids = self.tokenizer(text)["input_ids"]
        if len(ids) > budget:
            text = self.tokenizer.decode(ids[:budget], skip_special_tokens=True)
        return template.replace("{text}", text)

    def generate(self, prompts: list[str], max_new_tokens: int, temperature: float, seed: int,
                 max_prompt_tokens: int) -> list[tuple[str, int]]:
        """(generated text, new tokens) per prompt; temperature 0 is greedy decoding (deterministic)."""
        import torch

        self.tokenizer.padding_side = "left"  # generation continues from the last real token
        room = self.context - max_new_tokens
        if room < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in {self.context} positions")
        tokens = self.tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                                max_length=min(max_prompt_tokens, room)).to(self.device)
        options = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
        if temperature:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = self.model.generate(**tokens, max_new_tokens=max_new_tokens, min_new_tokens=1,
                                      pad_token_id=self.tokenizer.pad_token_id, **options)
        new = out[:, tokens["input_ids"].shape[1]:]
        results = []
        for row in new:
            kept = [t for t in row.tolist() if t != self.tokenizer.pad_token_id]
            results.append((self.tokenizer.decode(kept, skip_special_tokens=True).strip(), len(kept)))
        return results


def cached_causal_lm(path: str, device: str = "auto", precision: str = "auto") -> CausalLM:
    """This worker's causal LM for `path` on the task's device, loaded on first use and reused after."""
    resolved = task_device(device)
    return load_once(("causal_lm", path, precision), resolved, lambda: load_causal_lm(path, resolved, precision))


def load_causal_lm(path: str, device: str = "cpu", precision: str = "fp32") -> CausalLM:
    """The causal LM saved at `path` (a transformers `save_pretrained` directory) on `device`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require_path(path, "language model")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, use_safetensors=True)
    model.to(device=device, dtype=torch_dtype(precision, device)).eval()
    return CausalLM(model, tokenizer, device)
