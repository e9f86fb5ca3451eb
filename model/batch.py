"""The tensors of one training batch, as the model and the loss consume them. Torch only."""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class TrainBatch:
    images: dict[str, torch.Tensor]  # name -> [n, 3, S, S]
    texts: dict[str, tuple[torch.Tensor, torch.Tensor]]  # name -> (ids [n, L], mask [n, L])
    views: dict[str, tuple[str | None, str | None]]  # view -> (image name, text name), see MoonModel.forward
    query_index: dict[str, torch.Tensor]  # objective -> [Q_m] triplet index of each query of that view
    partner: torch.Tensor  # [B] in-batch index of each triplet's mined negative
    product_ids: list[str]
    # name -> [n, N] bool for image entries holding several images per input ([n, N, 3, S, S])
    image_masks: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)

    def to(self, device) -> "TrainBatch":
        return dataclasses.replace(
            self,
            images={k: v.to(device, non_blocking=True) for k, v in self.images.items()},
            texts={k: (i.to(device), m.to(device)) for k, (i, m) in self.texts.items()},
            query_index={k: v.to(device) for k, v in self.query_index.items()},
            partner=self.partner.to(device),
            image_masks={k: v.to(device) for k, v in self.image_masks.items()},
        )
