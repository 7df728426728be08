"""What image-scope rules see: the image, its final filesystem, every layer's
entries, and where each layer came from in the Dockerfile (when one is given)."""
from __future__ import annotations

from .history import map_history

__all__ = ["ImageView"]


class ImageView:
    """An analysed image for image rules (``scope: image``)."""

    def __init__(self, image, df=None):
        self.image = image
        self.df = df  # imagelint.dockerfile.Dockerfile or None
        self.sources = map_history(image.history, df)  # one LayerSource per history step
        self._final = None
        self._waste = None

    @property
    def final(self):
        """The merged filesystem (imagelint.analysis.FinalTree)."""
        if self._final is None:
            from .analysis import final_tree
            self._final = final_tree(self.image)
        return self._final

    @property
    def waste(self):
        if self._waste is None:
            from .analysis import waste_report
            self._waste = waste_report(self.image)
        return self._waste

    def layer_source(self, layer_index: int):
        """The history step (LayerSource) that made a layer, or None when history is short."""
        layer = self.image.layers[layer_index] if 0 <= layer_index < len(self.image.layers) else None
        if layer is None or layer.history_index is None or layer.history_index >= len(self.sources):
            return None
        return self.sources[layer.history_index]

    def layer_line(self, layer_index: int):
        """(start_line, end_line, certain) of the Dockerfile instruction that made a layer, or None."""
        src = self.layer_source(layer_index)
        if src is None or src.instruction is None:
            return None
        return src.instruction.start_line, src.instruction.end_line, src.certain

    def layer_label(self, layer_index: int) -> str:
        """Short text for a layer: its index and the step that made it."""
        from .history import parse_created_by

        layer = self.image.layers[layer_index]
        keyword, args = parse_created_by(layer.created_by or "")
        cmd = " ".join(f"{keyword} {args}".split()) if keyword else " ".join((layer.created_by or "").split())
        if len(cmd) > 60:
            cmd = cmd[:57] + "..."
        return f"layer {layer_index}" + (f" ({cmd})" if cmd else "")

    def matches_any_layer(self, regexes: list) -> list:
        """(layer index, entry) for entries in ANY layer whose path matches (deleted later or not)."""
        out = []
        for layer in self.image.layers:
            for e in layer.entries:
                if e.kind in ("whiteout", "opaque", "dir"):
                    continue
                if any(rx.match(e.path) for rx in regexes):
                    out.append((layer.index, e))
        return out
