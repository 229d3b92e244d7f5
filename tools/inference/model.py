"""A multi-task conversion model: DCN v2 (low-rank, optionally a mixture of low-rank experts) in
parallel with an MLP — or stacked, for comparison — over shared embeddings, with click and
conversion heads (ESMM factorisation, a shared multi-task head, or conversion alone).

Request-level dedup (`score_request`): one user and context, N candidates. The user tower (embeddings,
history pooling, the user encoder MLP) runs once;
the first layer of each branch is split, W·x₀ = W_u·x_u + W_i·x_i, so the user part of that matmul
runs once too; only item-side work scales with N. `forward` is the naive path (a user row per
candidate) that training uses and that the dedup path must equal.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn

from tools.inference.contracts import ModelConfig
from tools.inference.features import FeatureSchema


class CrossLayer(nn.Module):
    """x_{l+1} = Σ_e g_e(x_l) · x₀ ⊙ (U_e V_eᵀ x_l + b_e) + x_l."""

    def __init__(self, dim: int, rank: int, experts: int) -> None:
        super().__init__()
        self.v = nn.ModuleList(nn.Linear(dim, rank, bias=False) for _ in range(experts))
        self.u = nn.ModuleList(nn.Linear(rank, dim) for _ in range(experts))
        self.gate = nn.Linear(dim, experts, bias=False) if experts > 1 else None

    def mix(self, x0: Tensor, xl: Tensor, projected: list[Tensor], gate_logits: Tensor | None) -> Tensor:
        outputs = [x0 * u(p) for u, p in zip(self.u, projected, strict=True)]
        if gate_logits is None:
            single: Tensor = outputs[0] + xl
            return single
        weights = torch.softmax(gate_logits, dim=-1)
        return torch.stack(outputs, dim=-1).mul(weights.unsqueeze(1)).sum(-1) + xl

    def forward(self, x0: Tensor, xl: Tensor) -> Tensor:
        return self.mix(x0, xl, [v(xl) for v in self.v], self.gate(xl) if self.gate is not None else None)


class ConversionModel(nn.Module):
    def __init__(self, schema: FeatureSchema, config: ModelConfig) -> None:
        super().__init__()
        d = config.embedding_dim
        self.schema, self.config = schema, config
        self.user_embeddings = nn.ModuleList(nn.Embedding(size, d) for size in schema.user_categorical.values())
        self.item_embeddings = nn.ModuleList(nn.Embedding(size, d) for size in schema.item_categorical.values())
        self.surface_embedding = nn.Embedding(len(schema.surfaces), d)
        self.item_id_column = list(schema.item_categorical).index(schema.item_id_feature)
        raw_user = d * (len(schema.user_categorical) + 2) + len(schema.user_dense)  # + history + surface
        encoder: list[nn.Module] = []
        for hidden in config.user_encoder:
            encoder += [nn.Linear(raw_user, hidden), nn.ReLU()]
            raw_user = hidden
        self.user_encoder = nn.Sequential(*encoder)
        self.user_dim = raw_user
        self.item_dim = d * len(schema.item_categorical) + len(schema.item_dense)
        dim = self.user_dim + self.item_dim
        self.cross = nn.ModuleList(
            CrossLayer(dim, config.cross_rank, config.experts) for _ in range(config.cross_layers)
        )
        layers: list[nn.Module] = []
        width = dim
        for hidden in config.mlp:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        self.mlp = nn.Sequential(*layers)
        head_in = dim + width if config.structure == "parallel" else width
        outputs = {"esmm": 2, "shared": 2, "single": 1}[config.heads]
        self.head = nn.Linear(head_in, outputs)
        # PyTorch draws embeddings from N(0, 1); DCN v2's reference code (Keras) uses U(±0.05).
        # On the leak-free MovieLens funnel the difference is significant for the single-task model
        # only (`bastion eval inference --embedding-init normal`; README).
        if config.embedding_init == "uniform":  # "normal" keeps PyTorch's default, for comparison
            for embedding in (*self.user_embeddings, *self.item_embeddings, self.surface_embedding):
                nn.init.uniform_(embedding.weight, -0.05, 0.05)

    # -- towers ------------------------------------------------------------------------------------

    def user_part(self, user_cat: Tensor, user_dense: Tensor, history: Tensor, surface: Tensor) -> Tensor:
        parts = [emb(user_cat[:, i]) for i, emb in enumerate(self.user_embeddings)]
        item_ids = self.item_embeddings[self.item_id_column]
        mask = (history > 0).float().unsqueeze(-1)
        pooled = (item_ids(history) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        encoded: Tensor = self.user_encoder(
            torch.cat([*parts, pooled, self.surface_embedding(surface), user_dense], dim=1)
        )
        return encoded

    def item_part(self, item_cat: Tensor, item_dense: Tensor) -> Tensor:
        parts = [emb(item_cat[:, i]) for i, emb in enumerate(self.item_embeddings)]
        return torch.cat([*parts, item_dense], dim=1)

    def _heads(self, x: Tensor, h: Tensor) -> Tensor:
        final = torch.cat([x, h], dim=1) if self.config.structure == "parallel" else h
        logits: Tensor = self.head(final)
        return logits

    # -- naive path: one user row per candidate --------------------------------------------------------

    def forward(
        self,
        user_cat: Tensor,
        user_dense: Tensor,
        history: Tensor,
        surface: Tensor,
        item_cat: Tensor,
        item_dense: Tensor,
    ) -> Tensor:
        x0 = torch.cat(
            [self.user_part(user_cat, user_dense, history, surface), self.item_part(item_cat, item_dense)], 1
        )
        x = x0
        for layer in self.cross:
            x = layer(x0, x)
        h = self.mlp(x if self.config.structure == "stacked" else x0)
        return self._heads(x, h)

    # -- request-level dedup: one user, N candidates -----------------------------------------------------

    def split_weights(self) -> dict[str, list[tuple[Tensor, Tensor]]]:
        """First-layer weights split into user and item columns, transposed and contiguous.

        Cached for serving (call `freeze_split()` after loading); recomputed while training."""
        cached: dict[str, list[tuple[Tensor, Tensor]]] | None = getattr(self, "_split", None)
        if cached is not None:
            return cached
        du = self.user_dim

        def halves(weight: Tensor) -> tuple[Tensor, Tensor]:
            return weight[:, :du].T.contiguous(), weight[:, du:].T.contiguous()

        first = self.cross[0]
        assert isinstance(first, CrossLayer)
        linear = self.mlp[0]
        split = {
            "v": [halves(cast(nn.Linear, v).weight) for v in first.v],
            "gate": [halves(first.gate.weight)] if first.gate is not None else [],
            "mlp": [halves(linear.weight)] if isinstance(linear, nn.Linear) else [],
        }
        return split

    def freeze_split(self) -> None:
        with torch.no_grad():
            self._split = self.split_weights()

    def score_request(
        self,
        user_cat: Tensor,
        user_dense: Tensor,
        history: Tensor,
        surface: Tensor,
        item_cat: Tensor,
        item_dense: Tensor,
    ) -> Tensor:
        x_u = self.user_part(user_cat, user_dense, history, surface)  # (1, Du): once per request
        x_i = self.item_part(item_cat, item_dense)  # (N, Di)
        n = x_i.shape[0]
        x0 = torch.cat([x_u.expand(n, -1), x_i], dim=1)
        first = self.cross[0]
        assert isinstance(first, CrossLayer)
        split = self.split_weights()
        # Layer 0 of the cross branch: Vᵀx₀ = V_uᵀx_u (once) + V_iᵀx_i (per candidate).
        projected = [x_u @ wu + x_i @ wi for wu, wi in split["v"]]
        gate = None
        if first.gate is not None:
            gate = x_u @ split["gate"][0][0] + x_i @ split["gate"][0][1]
        x = first.mix(x0, x0, projected, gate)
        for layer in list(self.cross)[1:]:
            x = layer(x0, x)
        if self.config.structure == "parallel":
            # Layer 0 of the MLP: W x₀ + b = (W_u x_u + b) once + W_i x_i per candidate.
            linear = self.mlp[0]
            assert isinstance(linear, nn.Linear)
            wu, wi = split["mlp"][0]
            h = (x_u @ wu + linear.bias) + x_i @ wi
            h = self.mlp[1:](h)
        else:
            h = self.mlp(x)
        return self._heads(x, h)


def probabilities(logits: Tensor, heads: str) -> tuple[Tensor, Tensor | None]:
    """(p_conversion, p_click) from the head's logits."""
    if heads == "esmm":
        p_click = torch.sigmoid(logits[:, 0])
        return p_click * torch.sigmoid(logits[:, 1]), p_click  # p(conv) = p(click) · p(conv | click)
    if heads == "shared":
        return torch.sigmoid(logits[:, 1]), torch.sigmoid(logits[:, 0])
    return torch.sigmoid(logits[:, 0]), None
