"""Every step's dropout masks of an epoch, for M stacked models."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch

from .._network import dropout_threshold

# Dropout masks are drawn for this many values at a time: a few operations
# per block of batches instead of per batch, in bounded memory.
_MASK_VALUES = 2**20


def mask_blocks(n_samples, batch_size, widths, rates):
    """The blocks of rows whose dropout masks an epoch draws at once.

    Whole batches of at most :data:`_MASK_VALUES` mask values, at least one
    batch, as ``(first_row, n_rows)`` pairs in the order they are drawn.
    Each model of a trainer draws its masks in these blocks, and a window
    of dense rows of a :class:`~skdnn._engine.windows.WindowedTrainer` is
    one: a model's masks are the same in either.
    """
    per_row = sum(w for w, p in zip(widths, rates, strict=True) if p) or 1
    block = max(1, _MASK_VALUES // (per_row * batch_size)) * batch_size
    block = min(block, n_samples)
    return [
        (start, min(block, n_samples - start)) for start in range(0, n_samples, block)
    ]


class _EpochMasks:
    """Every step's dropout masks of an epoch, each model's as its own fit draws them.

    Each model has its own generator, seeded with its fit's torch seed, and
    draws from it in the blocks of rows of :func:`mask_blocks`, layer after
    layer, 16 random bits per unit, as its fit alone would (a trainer of
    one model). So a model's masks are its sequential fit's, bit for bit. Then, as
    in :func:`~skdnn._network.dropout_masks`, a unit is kept when its bits,
    read as a signed 16-bit integer, reach its model's threshold (a model of
    rate 0 keeps every unit), and kept units are scaled by ``1 / (1 - p)``.

    Each layer's bits lie in one region per model. A model whose batches
    fill the grid's slots (its batch size is the largest) draws each block
    where its rows sit in the grid, so that one strided comparison per layer
    makes every such model's masks from its bits; another model's bits are
    gathered by indices made once. Models of one seed that draw alike (a
    grid search with an int ``random_state`` seeds every candidate of a fold
    alike) share the first one's draws, copied: the draws took 3 ns a value.

    Parameters
    ----------
    layout : tuple
        :func:`batch_layout` of the models' row counts and batch sizes.
    batch : ndarray of int
        Each model's batch size.
    widths : list of int
        The hidden layers' widths.
    rates : ndarray of shape (n_models, n_hidden_layers)
        Each model's dropout rate per layer.
    generators : list of torch.Generator
        Each model's, seeded with its torch seed.
    dtype : torch.dtype
        The masks'.
    seeds : list of int, default=None
        Each model's torch seed, where the generators are fresh ones seeded
        so: models of one seed then draw once. None: each model draws.
    """

    def __init__(self, *, layout, batch, widths, rates, generators, dtype, seeds=None):
        _, valid = layout
        S, M, B = valid.shape
        device = generators[0].device
        n_rows = valid.sum(axis=(0, 2))
        self.layers = [i for i in range(len(widths)) if rates[:, i].any()]
        self.n_steps, self.n_layers = S, len(widths)
        self.generators = generators
        plans = [
            mask_blocks(int(n_rows[m]), int(batch[m]), widths, rates[m])
            for m in range(M)
        ]
        most_blocks = max(len(plan) for plan in plans)
        self.masks, self.regions, self.draws, self.gathers = {}, {}, [], []
        # Each model's threshold, as int16 to compare with its own bits, and
        # its scale. Views of these make each conversion's.
        self.thresholds, self.scales = {}, {}

        def per_model(values, dtype):
            return torch.tensor(values, dtype=dtype, device=device).view(1, M, 1, 1)

        for i in self.layers:
            # Room for the grid's units, and for each block's draw rounding
            # up to whole 64-bit values.
            size = -(-S * B * widths[i] // 4) + most_blocks
            self.regions[i] = torch.empty((M, size), dtype=torch.int64, device=device)
            # Feature-major, as the workspace's activations; ones for a
            # model without dropout on the layer, which draws nothing for it.
            self.masks[i] = torch.ones((S, M, widths[i], B), dtype=dtype, device=device)
            # A unit is kept where its 16 bits, as a signed integer, reach
            # its model's threshold: dropped with probability p.
            dropped, scales = zip(
                *(dropout_threshold(rate) for rate in rates[:, i]), strict=True
            )
            thresholds = np.array(dropped) - 32768
            self.thresholds[i] = per_model(thresholds, torch.int16)
            self.scales[i] = per_model(scales, dtype)
        spans_of, direct_of = [], []
        for m in range(M):
            spans, direct = self._plan_model(
                m, plans[m], int(batch[m]), int(n_rows[m]), widths, rates[m], (S, B)
            )
            spans_of.append(spans)
            direct_of.append(direct)

        # Models with one torch seed and the same draws draw the same bits
        # (a grid search with an int random_state seeds every candidate of a
        # fold alike): the first of them draws (see draw).
        groups = {}
        for m, spans in enumerate(spans_of):
            key = (m,) if seeds is None or not spans else (seeds[m], spans)
            groups.setdefault(key, []).append(m)
        self.groups = [np.array(members) for members in groups.values()]
        self._plan_conversions(widths, spans_of, direct_of, (S, M, B))

    def _plan_model(self, m, plan, b, n_rows, widths, rates, grid):
        """Model m's draws, and its gathers where its bits are not in grid order.

        Returns the spans of its regions that it draws into, ``(layer, begin,
        end)``, and whether its bits lie in the grid's order (``direct``):
        with the grid's batch size and blocks of whole 64-bit values.
        """
        S, B = grid
        device = self.generators[0].device
        dropped = np.flatnonzero(rates)
        direct = b == B and all(
            start * widths[i] % 4 == 0 for start, _ in plan for i in dropped
        )
        spans, offsets = [], dict.fromkeys(dropped, 0)
        for start, count in plan if len(dropped) else ():
            for i in dropped:
                begin = start * widths[i] // 4 if direct else offsets[i]
                end = begin + -(-count * widths[i] // 4)
                spans.append((i, begin, end))
                offsets[i] = end
        self.draws.append([self.regions[i][m, a:e] for i, a, e in spans])
        if direct:
            return tuple(spans), direct
        rows = np.arange(n_rows)
        for i in dropped:
            # The int16 position of each of the model's grid units in its
            # region: block after block, each rounded up to 64 bits.
            w = widths[i]
            position = np.zeros((S, B, w), dtype=np.int64)
            offset = 0
            for start, count in plan:
                block = rows[start : start + count]
                units = (block - start)[:, None] * w + np.arange(w)
                position[block // b, block % b] = 4 * offset + units
                offset += -(-count * w // 4)
            # Converted on its own, after its layer's conversion, which
            # covers it with bits out of order (see draw).
            self.gathers.append(
                (
                    self.regions[i][m].view(torch.int16),
                    torch.from_numpy(position.transpose(0, 2, 1).copy()).to(device),
                    torch.empty((S, w, B), dtype=torch.int16, device=device),
                    self.masks[i][:, m : m + 1],
                    self.thresholds[i][:, m : m + 1],
                    self.scales[i][:, m : m + 1],
                )
            )
        return tuple(spans), direct

    def _plan_conversions(self, widths, spans_of, direct_of, grid):
        """How the drawn bits become the float masks, for :meth:`draw`.

        A conversion per layer, one of two kinds (see :func:`_own_masks` and
        :func:`_distinct_masks`), and one per model that gathers its bits.
        """
        S, M, B = grid
        # Each model's bits of a layer, read as its grid's units in the
        # masks' order: (steps, models, units, slots).
        placed = {}
        for i in self.layers:
            units = self.regions[i].view(torch.int16)[:, : S * B * widths[i]]
            placed[i] = units.view(M, S, B, widths[i]).permute(1, 0, 3, 2)
        self.conversions, self.region_copies = [], []
        if len(self.groups) == M:
            # Every model its own bits: compared as they are, every model's
            # (a model without dropout on the layer: any bits reach its
            # threshold, and its scale is 1).
            for i in self.layers:
                self.conversions.append(
                    (_own_masks, placed[i], self.masks[i], self.thresholds[i],
                     self.scales[i])
                )  # fmt: skip
            return
        # Otherwise each group's first model's bits, converted once, are
        # every member's; models that gather their bits get a copy of the
        # first one's region of each layer the group draws.
        layers_of = [{i for i, _, _ in spans_of[g[0]]} for g in self.groups]
        for members, layers in zip(self.groups, layers_of, strict=True):
            for m in (m for m in members[1:] if not direct_of[m]):
                for i in sorted(layers):
                    self.region_copies.append(
                        (self.regions[i][m], self.regions[i][members[0]])
                    )
        for i in self.layers:
            drawing = [
                g
                for g, layers in zip(self.groups, layers_of, strict=True)
                if i in layers
            ]
            self.conversions.append(
                self._distinct_conversion(i, drawing, placed[i], grid)
            )

    def _distinct_conversion(self, i, drawing, placed, grid):
        """Layer i's conversion of its drawing groups' bits (see
        :func:`_distinct_masks`).

        Models of one group and one rate have the same masks (a grid
        search's folds of one size, each candidate's on every fold): each
        such mask is made once, then copied into every model's place.
        """
        S, M, B = grid
        device = self.generators[0].device
        # A model of no drawing group (no dropout on the layer) takes the
        # first group's bits: any reach its threshold.
        group = np.zeros(M, dtype=np.int64)
        for g, members in enumerate(drawing):
            group[members] = g
        thresholds = self.thresholds[i].view(-1).cpu().numpy()
        scales = self.scales[i].view(-1).cpu().numpy()
        # The distinct masks, each group's next to each other.
        keys = sorted(
            {(group[m], int(thresholds[m]), float(scales[m])) for m in range(M)}
        )
        position = {key: k for k, key in enumerate(keys)}
        # Mask-major, (K, S, w, B): each group's masks one contiguous block.
        distinct = torch.empty(
            (len(keys), S, self.masks[i].shape[2], B),
            dtype=self.masks[i].dtype,
            device=device,
        )
        compares, start = [], 0
        for g, members in enumerate(drawing):
            stop = start + sum(key[0] == g for key in keys)
            threshold = [key[1] for key in keys[start:stop]]
            bits = placed[:, members[0]]
            compares.append(
                (
                    bits,
                    torch.empty(bits.shape, dtype=distinct.dtype, device=device),
                    torch.tensor(threshold, dtype=distinct.dtype, device=device).view(
                        -1, 1, 1, 1
                    ),
                    distinct[start:stop],
                )
            )
            start = stop
        scale = torch.tensor(
            [key[2] for key in keys], dtype=distinct.dtype, device=device
        ).view(-1, 1, 1, 1)
        # Step s of model m is row s M + m of the masks' (S M, w B) rows,
        # and takes row k S + s of the K distinct masks': picking rows so
        # took half the time of picking along the models' axis.
        of_model = [
            position[group[m], int(thresholds[m]), float(scales[m])] for m in range(M)
        ]
        index = (np.array(of_model)[None, :] * S + np.arange(S)[:, None]).reshape(-1)
        return (_distinct_masks, compares, distinct, scale,
                torch.from_numpy(index).to(device), self.masks[i])  # fmt: skip

    def continue_from(self, other, keep):
        """Draw on as the models ``keep`` (indices) of ``other`` would.

        Each takes a copy of the generator its draws came from there: its
        own, or the one its group shared (see :meth:`draw`).
        """
        leaders = {m: members[0] for members in other.groups for m in members}
        generators = []
        for m in keep:
            source = other.generators[leaders[m]]
            generator = torch.Generator(device=source.device)
            generator.set_state(source.get_state())
            generators.append(generator)
        self.generators = generators

    def per_step(self):
        """Each step's tuple of masks per hidden layer (empty without dropout)."""
        if not self.layers:
            return [()] * self.n_steps
        per_layer = [
            self.masks[i].unbind(0) if i in self.masks else [None] * self.n_steps
            for i in range(self.n_layers)
        ]
        return list(zip(*per_layer, strict=True))

    def draw(self, running):
        """The next epoch's masks of the models where ``running`` is true.

        A stopped model draws nothing, as its fit would have ended.
        """
        if not self.layers:
            return
        for members in self.groups:
            if running[members].any():
                first = members[0]
                for bits in self.draws[first]:
                    bits.random_(-(2**63), None, generator=self.generators[first])
        for target, source in self.region_copies:
            target.copy_(source)
        for convert, *arguments in self.conversions:
            convert(*arguments)
        for region, index, units, mask, threshold, scale in self.gathers:
            torch.take(region, index, out=units)
            _own_masks(units.unsqueeze(1), mask, threshold, scale)


# A unit is kept where its 16 bits, as a signed integer, reach its model's
# threshold, and kept units are scaled by the model's 1 / (1 - p) in the
# masks' dtype: dropout_masks' numbers. A model's own bits are compared
# straight into its float masks (cast to floats first, then compared and
# scaled in two more passes, they took twice as long: 30 models' epoch of a
# layer of 6 units at batch 32, 56 against 108 us); a group's bits are cast
# once and compared with each of its distinct thresholds, and each distinct
# mask, scaled, copied into every member's place in one operation (not one
# per run of members). On W4's 36 models, whose 11 distinct masks were
# compared and scaled at every model's place before, an epoch's conversions
# took 138 us against 169 (one thread).


def _own_masks(bits, mask, threshold, scale):
    """Each model's masks from its own int16 ``bits`` and int16 threshold."""
    torch.ge(bits, threshold, out=mask)
    mask.mul_(scale)


def _distinct_masks(compares, distinct, scale, index, mask):
    """Each model's masks from its group's bits, each distinct mask made once.

    ``compares`` holds, per group, its first model's int16 bits, a buffer
    they are cast into, its models' distinct thresholds and their block of
    ``distinct``: the bits are cast once and compared with every threshold
    in one operation; then every distinct mask is scaled, and copied into
    each of its models' places (``index``: the rows of ``distinct`` in the
    masks' rows of a step's units).
    """
    for bits, cast, threshold, out in compares:
        if cast.device.type == "cpu":
            # numpy's strided cast: faster than torch's copy_ here.
            np.copyto(cast.numpy(), bits.numpy(), casting="unsafe")
        else:
            cast.copy_(bits)
        torch.ge(cast, threshold, out=out)
    distinct.mul_(scale)
    units = mask.shape[2] * mask.shape[3]
    torch.index_select(distinct.view(-1, units), 0, index, out=mask.view(-1, units))
