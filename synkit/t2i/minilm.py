"""The frozen all-MiniLM-L6-v2 encoder in the shapes the token and pixel families' pipelines call it.

``AmusedPipeline`` calls ``text_encoder(input_ids, return_dict=True, output_hidden_states=True)`` and
reads ``text_embeds`` (a pooled sentence vector) and ``hidden_states[-2]`` (per-token states). This
model gives MiniLM's own answer to both: its mean over the non-padding tokens (how the
sentence-transformers model was trained to embed a sentence) and its layers' token states. It masks
its own padding (id 0), since the pipeline passes no attention mask.

``save_pretrained`` records this class under its module, ``synkit.t2i.minilm``; diffusers loads a
component of a module outside its own libraries only when that module is already imported, which
``synkit.generate.render.load_pipeline`` does. ``PreTrainedModel`` is imported by name here because diffusers
looks for the loading base class in the component's module.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertModel, PreTrainedModel  # noqa: F401  (PreTrainedModel: read by diffusers' loader)
from transformers.models.bert.modeling_bert import BertPreTrainedModel
from transformers.models.clip.modeling_clip import CLIPTextModelOutput


class MiniLMTextEncoder(BertPreTrainedModel):
    """A BERT encoder whose output carries ``text_embeds`` (masked mean of the last layer) beside its hidden states."""

    config_class = BertConfig

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, return_dict: bool = True,
                output_hidden_states: bool = False, **kwargs) -> CLIPTextModelOutput:
        if attention_mask is None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True)
        weights = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
        pooled = (out.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1)
        return CLIPTextModelOutput(text_embeds=pooled, last_hidden_state=out.last_hidden_state, hidden_states=out.hidden_states)


class MiniLMCroppedModel(BertModel):
    """A ``BertModel`` that reads at most ``config.synkit_max_tokens`` token positions.

    ``IFPipeline.encode_prompt`` pads every prompt to 77 tokens itself, whatever its tokenizer's limit.
    This encoder cuts the ids back to the limit, as if the tokenizer had truncated there (a row cut
    short ends in ``config.synkit_sep_token_id``, as BERT's tokenizer ends it), so the pixel family's
    UNet attends to the same 32 text positions the other families' models do, and its captions are
    encoded in less than half the time. Token states are unchanged by the cut: padding is masked."""

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, **kwargs):
        limit = getattr(self.config, "synkit_max_tokens", None)
        if limit and input_ids is not None and input_ids.shape[1] > limit:
            if attention_mask is None:
                attention_mask = (input_ids != self.config.pad_token_id).long()
            cut = attention_mask[:, limit:].any(1)
            input_ids, attention_mask = input_ids[:, :limit].clone(), attention_mask[:, :limit]
            input_ids[cut, limit - 1] = self.config.synkit_sep_token_id
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
