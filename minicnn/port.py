"""Port a Keras program to minicnn by renaming its imports: python -m minicnn.port program.py

    python -m minicnn.port cifar10_cnn.py -o cifar10_cnn_minicnn.py     (no -o: to standard output)

What it renames, in the code only:
    keras, tensorflow.keras, tf.keras          -> minicnn
    from tensorflow import keras               -> import minicnn
    import tensorflow as tf                    -> import minicnn, where nothing else uses tf; kept,
                                                  with import minicnn after it, where tf.data,
                                                  tf.constant ... still need TensorFlow (each such
                                                  line of the original is reported on
                                                  standard error)
It reads the program's tokens (Python's tokenize), not its text: strings, comments and names
such as `keras_model` stay as they are, so model.save("model.keras") still writes a Keras file.
"""
import argparse
import io
import re
import sys
import tokenize

from minicnn.saving import atomic_write

_TF_IMPORT = re.compile(r"^([ \t]*)import[ \t]+tensorflow(?:[ \t]+as[ \t]+(\w+))?[ \t]*$", re.M)
_FROM_TF_IMPORT_KERAS = re.compile(r"^([ \t]*)from[ \t]+tensorflow[ \t]+import[ \t]+keras\b", re.M)


def _names(source):
    """The NAME tokens of a program, in order."""
    return [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME]


def _rename(source, aliases):
    """source with every `keras` name, and every `<alias>.keras` (alias: a name tensorflow is
    imported under), replaced by minicnn."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits = []                                              # (row, first col, end col), 1-based rows
    for i, t in enumerate(tokens):
        if t.type != tokenize.NAME or t.string != "keras":
            continue
        first = t
        if i >= 2 and tokens[i - 1].string == "." and tokens[i - 2].string in aliases \
                and tokens[i - 2].start[0] == t.start[0]:
            first = tokens[i - 2]                          # tf.keras: both names go
        edits.append((t.start[0], first.start[1], t.end[1]))
    lines = source.splitlines(keepends=True)
    for row, start, end in sorted(edits, reverse=True):    # right to left: columns stay valid
        lines[row - 1] = lines[row - 1][:start] + "minicnn" + lines[row - 1][end:]
    return "".join(lines)


def port(source):
    """(ported source, notes): the program with Keras's names renamed to minicnn's (see the
    module's docstring), and a note for each line that still uses TensorFlow itself."""
    if not isinstance(source, str):
        raise TypeError(f"port expects the program's text (str), got {type(source).__name__}")
    source = _FROM_TF_IMPORT_KERAS.sub(r"\1import minicnn", source)
    aliases = {m.group(2) or "tensorflow" for m in _TF_IMPORT.finditer(source)}
    ported = _rename(source, aliases | {"tensorflow"})
    import_rows = {m.string.count("\n", 0, m.start()) + 1 for m in _TF_IMPORT.finditer(ported)}
    still = sorted({t.start[0] for t in _names(ported) if t.string in aliases} - import_rows)
    lines = ported.splitlines()
    notes = [f"line {row}: still uses TensorFlow: {lines[row - 1].strip()}" for row in still]
    if still:                                   # TensorFlow stays; minicnn comes in after it
        ported = _TF_IMPORT.sub(lambda m: m.group(0) + "\n" + m.group(1) + "import minicnn", ported, count=1)
    else:                                       # TensorFlow was there for Keras only
        ported = _TF_IMPORT.sub(lambda m: m.group(1) + "import minicnn", ported, count=1)
        ported = _TF_IMPORT.sub(lambda m: "", ported)
    return ported, notes


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m minicnn.port", description=__doc__.splitlines()[0])
    parser.add_argument("program", help="the Keras program (.py)")
    parser.add_argument("-o", "--out", help="where to write the ported program (default: standard output)")
    args = parser.parse_args(argv)
    with open(args.program, encoding="utf-8") as f:
        source = f.read()
    try:
        ported, notes = port(source)
    except (tokenize.TokenError, SyntaxError) as error:
        raise SystemExit(f"{args.program}: not a Python program this port can read ({error})") from None
    if args.out:
        atomic_write(args.out, lambda f: f.write(ported.encode("utf-8")))
    else:
        sys.stdout.write(ported)
    for note in notes:
        print(f"{args.program}: {note}", file=sys.stderr)


if __name__ == "__main__":
    main()
