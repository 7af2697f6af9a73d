"""JMT (joint multimodal transformer) and MT, original-training.md §4.5-4.6.

Roles are chosen by modality name, as the original picks ``x['video']`` (v) and
``x['vggish']`` (a): any order of the same modalities builds the same model and loads the
same checkpoint (see ``roles``). Per-stream encoders and cross-attentions run
sequence-first over time, per sample.
The final stage stacks the S cross-attention streams (JMT 6, MT 2) and keeps the last one
(JMT a<-j, MT a<-v) after one more encoder block and self-attention:

* compat (``jmt_fusion_seq_first``): the (L, B, S, F) stack is viewed as (L*B, S, F) and fed
  to sequence-first attention, which therefore attends along L*B (all time steps of all
  samples) with the S streams as the batch. A sample's output depends on the others in
  its batch; this is what the original did and what its checkpoints were trained with.
* fixed: attention runs across the S streams of one frame of one sample (the reading the
  design intends). Nothing crosses samples; temporal context comes from the TCNs and the
  per-sample encoders/cross-attentions, where padded frames are masked out as keys.

Text: the original reads only v and a and computes the other TCNs for nothing
(``jmt_use_text`` False). In fixed mode every further modality (e.g. ``bert``) is projected
to 128 per frame (``fuse.extra_proj.<name>``) and joins the final stage as one more stream,
so the output stream attends to it at every frame.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

from .base import MODELS, FrameModel, MaskedBatchNorm1d, Modality, head_forward, safe_key_padding

D = 128

#: Branch names that may play the visual (v) and audio (a) roles, in order of preference. The
#: original knows only ``video`` and ``vggish``; the others let a model run on other features.
VISUAL_ROLE = ("video", "ir50", "resnet", "dlib_face", "landmarks")
AUDIO_ROLE = ("vggish", "logmel", "egemaps", "mfcc")


def roles(modalities: Sequence[Modality]) -> Tuple[Modality, Modality, List[Modality]]:
    """(visual, audio, the others in the given order), picked by branch name.

    A role no listed name fills goes to the first modality left, in the given order.
    """
    def pick(preferred, pool):
        for name in preferred:
            for m in pool:
                if m.branch == name:
                    return m
        return pool[0]

    pool = list(modalities)
    v = pick(VISUAL_ROLE, pool)
    pool.remove(v)
    a = pick(AUDIO_ROLE, pool)
    pool.remove(a)
    return v, a, pool


class TransformerEncoderLayer(nn.Module):
    """MHA (1 head, sequence-first) + residual + LayerNorm, FFN 128-128-128 + residual + LayerNorm."""

    def __init__(self, dim: int = D, num_heads: int = 1, hidden: int = D):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, num_heads)
        self.feed_forward = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.layer_norm1 = nn.LayerNorm(dim)
        self.layer_norm2 = nn.LayerNorm(dim)

    def forward(self, x, key_padding_mask=None, need_weights=False):
        attn = _attend(self.attention, x, x, key_padding_mask, need_weights)
        x = self.layer_norm1(x + attn)
        return self.layer_norm2(x + self.feed_forward(x))


class TransformerEncoderBlock(nn.Module):
    def __init__(self, dim: int = D, num_heads: int = 1, hidden: int = D, num_layers: int = 1):
        super().__init__()
        self.layers = nn.Sequential(*[TransformerEncoderLayer(dim, num_heads, hidden) for _ in range(num_layers)])

    def forward(self, x, key_padding_mask=None, need_weights=False):
        for layer in self.layers:
            x = layer(x, key_padding_mask, need_weights)
        return x


# Attention over time costs O(L^2): whole-video evaluation of a 15,000-frame video spent
# minutes in it. Beyond LOCAL_ATTENTION_FROM frames (fixed mode only) each block of
# LOCAL_ATTENTION_RADIUS queries attends to the keys within one more block on either side, so
# every frame sees at least RADIUS frames of context each way (more than a training window of
# 696 gives it) and the cost is linear in L. Up to that length attention is exact and unchanged.
LOCAL_ATTENTION_FROM = 2048
LOCAL_ATTENTION_RADIUS = 1024


def _attend(mha: nn.MultiheadAttention, q, kv, key_padding_mask, need_weights):
    """Sequence-first attention of ``q`` (L, B, C) over ``kv``; local beyond LOCAL_ATTENTION_FROM."""
    length = q.shape[0]
    if need_weights or length <= LOCAL_ATTENTION_FROM or kv.shape[0] != length:
        return mha(q, kv, kv, key_padding_mask=key_padding_mask, need_weights=need_weights)[0]
    r = LOCAL_ATTENTION_RADIUS
    outs = []
    for s in range(0, length, r):
        e = min(s + r, length)
        ks, ke = max(0, s - r), min(length, e + r)
        # a sample whose keys in this span are all padding keeps them (finite softmax; its
        # queries here are padding too, as padding only ever trails the real frames)
        kpm = None if key_padding_mask is None else safe_key_padding(~key_padding_mask[:, ks:ke])
        outs.append(mha(q[s:e], kv[ks:ke], kv[ks:ke], key_padding_mask=kpm, need_weights=False)[0])
    return torch.cat(outs, 0)


class JMTFusion(nn.Module):
    """Encoders, cross-attentions and the final stream stage. ``joint`` False gives MT."""

    # (name, query, key/value) in the original's stacking order.
    JMT_STREAMS = (("CA_va", "v", "a"), ("CA_av", "a", "v"), ("CA_jrv", "j", "v"),
                   ("CA_vjr", "v", "j"), ("CA_jra", "j", "a"), ("CA_ajr", "a", "j"))
    MT_STREAMS = (("CA_va", "v", "a"), ("CA_av", "a", "v"))
    # Registration order of the cross-attentions in the original (state-dict order).
    JMT_ORDER = ("CA_va", "CA_av", "CA_jra", "CA_ajr", "CA_vjr", "CA_jrv")

    def __init__(self, visual_dim: int, audio_dim: int, extra_dims: Mapping[str, int], joint: bool,
                 seq_first_mixing: bool):
        super().__init__()
        self.joint, self.seq_first_mixing = joint, seq_first_mixing
        self.visual_encoder = TransformerEncoderBlock()
        self.audio_encoder = TransformerEncoderBlock()
        if joint:
            self.jr_encoder = TransformerEncoderBlock()
        self.final_encoder = TransformerEncoderBlock()
        for name in (self.JMT_ORDER if joint else ("CA_va", "CA_av")):
            setattr(self, name, nn.MultiheadAttention(D, 1))
        self.reduce_feats_dim = nn.Linear(2 * D, D)  # used by JMT only; MT keeps it unused
        self.augment_audio_feats_dim = nn.Linear(audio_dim, D)
        self.final_self_attention = nn.MultiheadAttention(D, 1)
        self.streams = self.JMT_STREAMS if joint else self.MT_STREAMS
        # Not in the original (its visual stream is always 128 wide): added only when needed.
        self.project_visual = nn.Linear(visual_dim, D) if visual_dim != D else None
        self.extra_proj = nn.ModuleDict({n: nn.Linear(c, D) for n, c in extra_dims.items()}) if extra_dims else None

    def forward(self, v: torch.Tensor, a: torch.Tensor, extras: Mapping[str, torch.Tensor],
                mask: Optional[torch.Tensor]) -> torch.Tensor:
        """v, a, extras (B, L, C); mask (B, L) or None. Returns (B, L, 128)."""
        need_w = self.seq_first_mixing  # the original's code path (explicit softmax) in compat
        kpm = safe_key_padding(mask)
        v = v.transpose(0, 1)  # (L, B, C): sequence-first as in the original
        a = self.augment_audio_feats_dim(a.transpose(0, 1))
        if self.project_visual is not None:
            v = self.project_visual(v)
        enc = {"v": self.visual_encoder(v, kpm, need_w), "a": self.audio_encoder(a, kpm, need_w)}
        if self.joint:
            enc["j"] = self.jr_encoder(self.reduce_feats_dim(torch.cat((v, a), dim=2)), kpm, need_w)
        outs = [_attend(getattr(self, name), enc[q], enc[kv], kpm, need_w) for name, q, kv in self.streams]
        keep = len(outs) - 1
        if self.extra_proj is not None:
            outs += [self.extra_proj[n](x.transpose(0, 1)) for n, x in extras.items()]
        stack = torch.stack(outs, dim=2)  # (L, B, S, F)
        length, bsz, n_streams, feat = stack.shape
        if self.seq_first_mixing:
            flat = stack.reshape(length * bsz, n_streams, feat)  # sequence L*B, batch S (the defect)
            enc_f = self.final_encoder(flat, None, need_w)
            out = self.final_self_attention(enc_f, enc_f, enc_f, need_weights=need_w)[0]
            out = out.reshape(length, bsz, n_streams, feat)[:, :, keep]
        else:
            flat = stack.reshape(length * bsz, n_streams, feat).transpose(0, 1)  # sequence S, batch L*B
            enc_f = self.final_encoder(flat, None, False)
            out = self.final_self_attention(enc_f, enc_f, enc_f, need_weights=False)[0]
            out = out[keep].reshape(length, bsz, feat)
        return out.transpose(0, 1)


@MODELS.register("jmt")
class JMT(FrameModel):
    model_name = "JMT"
    joint = True

    def __init__(self, modalities, compat=False, **kw):
        super().__init__(modalities, compat, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"{self.model_name} needs at least two modalities (visual, audio), "
                             f"got {[m.name for m in self.modalities]}")
        # Original registration order: temporal, bn, spatial, fuse, bn1, fc1, fc2.
        self._build_temporal()
        self._build_bn()
        self._build_spatial()
        v, a, rest = self._roles = roles(self.modalities)
        extra = {m.name: self.out_channels(m) for m in rest} if self.compat.jmt_use_text else {}
        self.fuse = JMTFusion(self.out_channels(v), self.out_channels(a), extra, self.joint,
                              self.compat.jmt_fusion_seq_first)
        self.bn1 = MaskedBatchNorm1d(D)
        self.fc1 = nn.Linear(D, D)
        self.fc2 = nn.Linear(D, self.num_classes)

    def forward(self, inputs: Mapping[str, torch.Tensor], mask: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        feats, bsz, length = self._features(inputs)
        mask = self._mask(mask, bsz, length)
        per_mod = {name: x.transpose(1, 2) for name, x in self._temporal(feats, mask).items()}
        v, a, rest = self._roles
        extras = {m.name: per_mod[m.name] for m in rest} if self.compat.jmt_use_text else {}
        fused = self.fuse(per_mod[v.name], per_mod[a.name], extras, mask)
        logits = head_forward(self.fc1, self.bn1, self.fc2, fused, mask)
        return self._finish(logits, fused, per_mod)


@MODELS.register("mt")
class MT(JMT):
    model_name = "MT"
    joint = False
