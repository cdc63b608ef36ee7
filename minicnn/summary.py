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
    rows = [(f"{layer.name} ({type(layer).__name__})", str((None,) + tuple(layer.output_shape)),
             f"{layer.count_params():,}") for layer in model.layers]
    widths = [max(31, *(len(r[0]) + 2 for r in rows)), max(22, *(len(r[1]) + 2 for r in rows)), 15]

    def line(left, mid, right, fill):
        return left + mid.join(fill * (w + 2) for w in widths) + right

    def row(cells, bar="│"):
        return bar + bar.join(f" {c:{a}{w}} " for c, a, w in zip(cells, ("<", "<", ">"), widths)) + bar

    out = [f'Model: "{model.name}"', line("┏", "┳", "┓", "━"), row(("Layer (type)", "Output Shape", "Param #"), "┃"),
           line("┡", "╇", "┩", "━")]
    for i, r in enumerate(rows):
        out.append(row(r))
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
