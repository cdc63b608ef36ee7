"""model.summary(): Keras 3's box table of layers, output shapes and parameter counts.

After the optimizer is built (after fit), an 'Optimizer params' line appears and Total includes it,
as in Keras 3 (for Adam: 3 x trainable + non-trainable + 2 for iterations and learning rate).
"""


def readable_size(nbytes):
    """Keras's memory format: 1024-based units, two decimals."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if nbytes < 1024:
            return f"{nbytes:.2f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.2f} PB"


def summary_text(model):
    """The table: a row per layer; a graph that is not a plain chain (a functional Model with
    branches or shared layers) adds Keras's 'Connected to' column, one input per line."""
    links = model.connections() if hasattr(model, "connections") else None
    rows = []
    for layer in model.layers:
        row = [f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(layer.output_shape)),
               f"{layer.count_params():,}"]
        rows.append(row if links is None else row + [links[layer]])
    header = ["Layer (type)", "Output Shape", "Param #"] + ([] if links is None else ["Connected to"])
    align = ("<", "<", ">", "<")
    widths = [max(31, *(len(r[0]) + 2 for r in rows)), max(22, *(len(r[1]) + 2 for r in rows)), 15]
    if links is not None:
        widths.append(max(18, *(len(part) + 1 for r in rows for part in r[3].split(", "))))

    def line(left, mid, right, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(cells, bar="│"):
        return bar + bar.join(f" {c:{a}{w}} " for c, a, w in zip(cells, align, widths)) + bar

    def table_row(cells):
        """One layer's lines: a graph layer reading several tensors lists one per line."""
        if links is None:
            return [row(cells)]
        reads = cells[3].split(", ")
        parts = [r + "," for r in reads[:-1]] + reads[-1:]
        return [row(cells[:3] + [parts[0]])] + [row(["", "", "", p]) for p in parts[1:]]

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━"), row(header, "┃"), line("┡", "╇", "┩", "━")]
    for i, r in enumerate(rows):
        out += table_row(r)
        out.append(line("├", "┼", "┤", "─") if i < len(rows) - 1 else line("└", "┴", "┘", "─"))
    trainable, non_trainable = model.count_params(True), model.count_params(False)
    opt = model.optimizer.count_params() if model.optimizer is not None else 0
    total = trainable + non_trainable + opt
    out.append(f" Total params: {total:,} ({readable_size(total * 4)})")
    out.append(f" Trainable params: {trainable:,} ({readable_size(trainable * 4)})")
    out.append(f" Non-trainable params: {non_trainable:,} ({readable_size(non_trainable * 4)})")
    if opt:
        out.append(f" Optimizer params: {opt:,} ({readable_size(opt * 4)})")
    return "\n".join(out)
