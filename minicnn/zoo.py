"""The models of the five Keras tutorials minicnn reproduces (each entry names its tutorial file;
table in the README), each with its tutorial's compile settings and training protocol, and one
recipe beyond them: `fast_cifar10` (90%+ in seconds on a GPU; see its section below).

    entry = zoo.get("tutorial000");  model = entry.build()   # compiled, as the tutorial compiles it
    entry.batch_size, entry.epochs, entry.validation, entry.checkpoint

`validation` says where the tutorial's validation data come from: "first5000" (the first 5,000
training images are held out, 45k remain), or "test" (the test set is passed as validation_data).
`checkpoint`: the tutorial keeps the best-val_loss weights and reports the test accuracy of those.
"""
from dataclasses import dataclass, field

from minicnn import augment, initializers, losses, optimizers
from minicnn.callbacks import FreezeAfter
from minicnn.constraints import max_norm
from minicnn.layers import (Activation, AveragePooling2D, BatchNormalization, Conv2D, Dense, Dropout, Flatten,
                            GlobalMaxPooling2D, MaxPooling2D, Rescaling)
from minicnn.model import Sequential


@dataclass
class ZooEntry:
    name: str
    tutorial: str
    description: str
    layers: callable              # () -> list of layers
    optimizer: callable           # () -> Optimizer, as the tutorial configures it
    optimizer_text: str
    batch_size: int
    epochs: int
    params: int
    dataset: str = "cifar10"
    validation: str = "test"
    checkpoint: bool = False
    notes: str = ""
    input_shape: tuple = (32, 32, 3)
    extra: dict = field(default_factory=dict)
    loss: callable = "categorical_crossentropy"     # or () -> Loss
    prepare: callable = None      # (model, x_train) -> None: data-dependent initialisation, before fit
    augment: callable = None      # () -> fit(augment=...) callable
    tta: bool = False             # evaluate with augment.predict_tta
    keras_twin: bool = True       # the compiled model has a Keras equivalent (optimizer included)
    callbacks: callable = None    # () -> list of callbacks the recipe's fit uses

    def build(self, compile=True):
        model = Sequential(self.layers(), name=self.name)
        model.build(self.input_shape)
        if compile:
            loss = self.loss() if callable(self.loss) else self.loss
            model.compile(optimizer=self.optimizer(), loss=loss, metrics=["accuracy"])
        return model

    def protocol(self):
        split = {"first5000": "45k train / first 5k validation", "test": "50k train, test set as validation"}
        if self.dataset == "fashion_mnist":
            split = {"test": "60k train, test set as validation"}
        return (f"{self.optimizer_text}, batch {self.batch_size}, {self.epochs} epochs, {split[self.validation]}"
                + (", best-val_loss weights" if self.checkpoint else ", last-epoch weights"))


def _t000():
    return [Conv2D(16, 3, padding="same", activation="relu", input_shape=(32, 32, 3)), MaxPooling2D(2),
            Conv2D(32, 3, padding="same", activation="relu"), MaxPooling2D(2),
            Conv2D(64, 3, padding="same", activation="relu"), MaxPooling2D(2),
            Conv2D(128, 3, padding="same", activation="relu"), MaxPooling2D(2),
            Dropout(0.3), Flatten(), Dense(256, activation="relu"), Dropout(0.4), Dense(10, activation="softmax")]


def _t001_model_1():
    return [Conv2D(32, (5, 5), strides=(2, 2), padding="same", input_shape=(32, 32, 3)), Activation("relu"),
            Conv2D(32, (5, 5), strides=(2, 2)), Activation("relu"), MaxPooling2D(pool_size=(2, 2)), Dropout(0.25),
            Flatten(), Dense(512), Activation("relu"), Dropout(0.5), Dense(10), Activation("softmax")]


def _t001_model_2():
    return [Conv2D(32, (5, 5), strides=(1, 1), padding="same", input_shape=(32, 32, 3)), Activation("relu"),
            Conv2D(32, (5, 5), strides=(1, 1)), Activation("relu"), MaxPooling2D(pool_size=(2, 2)), Dropout(0.5),
            Conv2D(32, (3, 3), strides=(1, 1)), Activation("relu"), Conv2D(16, (3, 3), strides=(1, 1)),
            Activation("relu"), MaxPooling2D(pool_size=(2, 2)), Dropout(0.5), Flatten(), Dense(512),
            Activation("relu"), Dropout(0.5), Dense(10), Activation("softmax")]


def _t002():
    return [Conv2D(16, 2, padding="same", activation="relu", input_shape=(32, 32, 3)), MaxPooling2D(2),
            Conv2D(32, 2, padding="same", activation="relu"), MaxPooling2D(2),
            Conv2D(64, 2, padding="same", activation="relu"), MaxPooling2D(2),
            Dropout(0.3), Flatten(), Dense(500, activation="relu"), Dropout(0.4), Dense(10, activation="softmax")]


def _t003_small():
    return [Conv2D(8, (3, 3), strides=(1, 1), activation="relu", input_shape=(32, 32, 3)),
            MaxPooling2D(pool_size=(2, 2), strides=(2, 2)), Flatten(), Dense(100, activation="relu"),
            Dense(10, activation="softmax")]


def _t003_larger():
    return [Conv2D(8, (3, 3), strides=(1, 1), activation="relu", input_shape=(32, 32, 3)),
            MaxPooling2D(pool_size=(2, 2), strides=(2, 2)), Conv2D(512, (3, 3), activation="relu"),
            MaxPooling2D((2, 2)), Conv2D(256, (3, 3), activation="relu"), Flatten(),
            Dense(100, activation="relu"), Dense(10, activation="softmax")]


def _t003_lenet5():
    return [Conv2D(6, (3, 3), strides=(1, 1), activation="tanh", padding="same", input_shape=(28, 28, 1)),
            AveragePooling2D(pool_size=(2, 2), strides=(2, 2)),
            Conv2D(16, (5, 5), strides=(1, 1), activation="tanh", padding="valid"),
            AveragePooling2D(pool_size=(2, 2), strides=(2, 2)),
            Conv2D(120, (5, 5), strides=(1, 1), activation="tanh", padding="valid"), Flatten(),
            Dense(84, activation="tanh"), Dense(10, activation="softmax")]


def _t003_lenet5_bn():
    return [Conv2D(6, (5, 5), strides=(1, 1), activation="tanh", padding="valid", input_shape=(32, 32, 1)),
            BatchNormalization(), AveragePooling2D(pool_size=(2, 2), strides=(2, 2)),
            Conv2D(16, (5, 5), strides=(1, 1), activation="tanh", padding="valid"),
            AveragePooling2D(pool_size=(2, 2), strides=(2, 2)),
            Conv2D(120, (5, 5), strides=(1, 1), activation="tanh", padding="valid"), Flatten(),
            Dense(84, activation="tanh"), Dropout(0.2), Dense(10, activation="softmax")]


def _t004():
    return [Conv2D(32, (3, 3), input_shape=(32, 32, 3), activation="relu", padding="same"), Dropout(0.2),
            Conv2D(32, (3, 3), activation="relu", padding="same"), MaxPooling2D(),
            Conv2D(64, (3, 3), activation="relu", padding="same"), Dropout(0.2),
            Conv2D(64, (3, 3), activation="relu", padding="same"), MaxPooling2D(),
            Conv2D(128, (3, 3), activation="relu", padding="same"), Dropout(0.2),
            Conv2D(128, (3, 3), activation="relu", padding="same"), MaxPooling2D(),
            Flatten(), Dropout(0.2), Dense(1024, activation="relu", kernel_constraint=max_norm(3)), Dropout(0.2),
            Dense(512, activation="relu", kernel_constraint=max_norm(3)), Dropout(0.2),
            Dense(10, activation="softmax")]


# ---- beyond the tutorials: a fast 90%+ CIFAR-10 recipe ---------------------------------------------
# The network and training recipe of the fastest known CIFAR-10 trainers (Keller Jordan's airbench,
# arXiv 2404.00498), re-derived from the paper in minicnn's own layers:
#   - a fixed 2x2 "whitening" convolution (24 filters: the 12 principal directions of 2x2x3 training
#     patches scaled to unit variance, and their negatives; its bias trained for 3 epochs), then GELU;
#   - three blocks conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU, widths 64/256/256:
#     convs without bias, Dirac-initialised (half identity), BN without scale (gamma fixed at 1),
#     moving-statistic momentum 0.6 (Keras's convention: airbench passes PyTorch 1 - 0.6), epsilon 1e-12;
#   - global max pooling, Dense(10) without bias, logits scaled by 1/9, softmax; label smoothing 0.2;
#   - SGD, Nesterov momentum 0.85, batch 1024, lr warm-up over 23% of the steps then linear decay,
#     BN biases at 64x the learning rate (the same decay per step as the rest), decoupled weight decay;
#     Lookahead every 5 steps over the weights and the BN statistics (the slow copies catch up more
#     slowly as training ends), final weights and statistics = the slow ones;
#   - data: every epoch a reflect-padded 2-pixel random crop and alternating flips; evaluation
#     averages flipped and 1-pixel-shifted views (test-time augmentation).
# The PyTorch recipe sums the loss over the batch and couples weight decay with momentum; with
# Keras's mean loss and decoupled decay, lr = 11.5 / (1 + 1/(1 - 0.85)) = 1.5 and the decay per
# step 0.0133 lr_t / 1.5 give the same steady-state steps.
FAST_WIDTHS = (64, 256, 256)
FAST_BATCH, FAST_EPOCHS, FAST_TRAIN_SIZE = 1024, 10, 50_000


def _fast_layers(widths=FAST_WIDTHS, whiten=24):
    uniform = initializers.VarianceScaling(1 / 3, "fan_in", "uniform")      # PyTorch's default conv init

    def conv(filters):
        return Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=initializers.Dirac(uniform))

    def norm():
        return BatchNormalization(momentum=0.6, epsilon=1e-12, scale=False)

    layers = [Conv2D(whiten, 2, padding="valid", activation="gelu", input_shape=(32, 32, 3))]
    for width in widths:
        layers += [conv(width), MaxPooling2D(2), norm(), Activation("gelu"), conv(width), norm(), Activation("gelu")]
    return layers + [GlobalMaxPooling2D(), Dense(10, use_bias=False, kernel_initializer=uniform), Rescaling(1 / 9),
                     Activation("softmax")]


def fast_optimizer(steps=FAST_EPOCHS * -(-FAST_TRAIN_SIZE // FAST_BATCH), lr=1.5, momentum=0.85, decay_per_step=0.0133,
                   bias_scale=64.0, lookahead=True):
    """The fast recipe's SGD for a run of `steps` updates (see above; the arguments are its knobs)."""
    schedule = optimizers.PiecewiseLinear([0, round(0.23 * steps), steps], [0.2 * lr, lr, 0.07 * lr])
    knots = [k / 20 for k in range(21)]                  # Lookahead rate 1 - 0.95^5 (t/T)^3, in 20 pieces
    rate = optimizers.PiecewiseLinear([k * steps for k in knots], [1 - 0.95 ** 5 * k ** 3 for k in knots])
    opt = optimizers.SGD(schedule, momentum=momentum, nesterov=True, weight_decay=decay_per_step / lr,
                         lr_multipliers={"batch_normalization*/beta": bias_scale, "conv2d/W": 0.0},
                         lookahead_steps=5 if lookahead else None, lookahead_rate=rate, lookahead_state=lookahead)
    opt.exclude_from_weight_decay(var_names=["^conv2d/W$"])             # the whitening kernel stays fixed
    return opt


def prepare_fast(model, x_train, n=5000):
    """The whitening convolution from the first n training images (as the model sees them, where
    they are: host or device): kernel = initializers.patch_whitening, bias = minus the mean patch's
    response (outputs centred). eps = 5e-4 is measured on channel-standardized images, as airbench
    whitens normalized images (on [0, 1] pixels it would damp the finest directions ~16x more)."""
    kernel, bias = initializers.patch_whitening(x_train[:n], 2, eps=5e-4, center=True, standardize=True)
    model.layers[0].set_weights([kernel, bias])


MODELS = {e.name: e for e in [
    ZooEntry("tutorial000", "000_b19b80fb251615bf.txt", "four conv blocks (16-32-64-128, 3x3 same) + Dense256",
             _t000, lambda: optimizers.Adam(), "Adam (defaults)", 32, 15, 231_338,
             validation="first5000", checkpoint=True),
    ZooEntry("tutorial001_model_1", "001_c914af26b7d91a86.txt", "two stride-2 5x5 convs + Dense512",
             _t001_model_1, lambda: optimizers.RMSprop(lr=0.0005, decay=1e-6), "RMSprop lr 5e-4, decay 1e-6",
             32, 15, 181_162),
    ZooEntry("tutorial001_model_2", "001_c914af26b7d91a86.txt", "conv-conv-pool-conv-conv-pool + Dense512 (exercise)",
             _t001_model_2, lambda: optimizers.RMSprop(lr=0.0001, decay=1e-6), "RMSprop lr 1e-4, decay 1e-6",
             32, 5, 252_378),
    ZooEntry("tutorial002", "002_dfbde5cdfbf33b41.txt", "three 2x2-kernel conv blocks + Dense500",
             _t002, lambda: optimizers.RMSprop(), "RMSprop (defaults)", 32, 100, 528_054,
             validation="first5000", checkpoint=True,
             notes="the tutorial trains 100 epochs; the best val_loss comes near epoch 14, so 20 suffice"),
    ZooEntry("tutorial003_small", "003_674b9aee7bd41465.txt", "Conv8 3x3 + pool + Dense100",
             _t003_small, lambda: optimizers.Adam(), "Adam (defaults)", 32, 10, 181_334,
             notes="as its code is written (8 filters); the printed summary (226,390) ran with 10"),
    ZooEntry("tutorial003_larger", "003_674b9aee7bd41465.txt", "Conv8 + Conv512 + Conv256 + Dense100",
             _t003_larger, lambda: optimizers.Adam(), "Adam (defaults)", 32, 10, 1_628_214),
    ZooEntry("tutorial003_lenet5", "003_674b9aee7bd41465.txt", "LeNet-5 as trained on Fashion-MNIST (tanh, AveragePooling)",
             _t003_lenet5, lambda: optimizers.SGD(), "SGD (defaults)", 128, 10, 61_610,
             dataset="fashion_mnist", input_shape=(28, 28, 1)),
    ZooEntry("tutorial003_lenet5_bn", "003_674b9aee7bd41465.txt",
             "LeNet-5 as first written (32x32x1, BatchNormalization, Dropout)",
             _t003_lenet5_bn, lambda: optimizers.SGD(), "SGD (defaults)", 128, 10, 61_730,
             dataset="fashion_mnist", input_shape=(32, 32, 1),
             notes="Fashion-MNIST is zero-padded from 28x28 to 32x32 for it, as the original LeNet-5 input"),
    ZooEntry("tutorial004", "004_a6ac6c5f887adee5.txt", "six 3x3 convs + Dense1024/512 with max_norm(3)",
             _t004, lambda: optimizers.SGD(lr=0.01, momentum=0.9, decay=0.01 / 25, nesterov=False),
             "SGD lr 0.01, momentum 0.9, decay 4e-4", 32, 3, 2_915_114,
             notes="compiled for 25 epochs (decay = lr/25) but its fit call trains 3"),
    ZooEntry("fast_cifar10", "002_dfbde5cdfbf33b41.txt",
             "beyond the tutorials (002's promise of 90%+): airbench-style whitened conv net, 64/256/256",
             _fast_layers, fast_optimizer, "SGD Nesterov 0.85, warm-up/decay, Lookahead, BN biases x64",
             FAST_BATCH, FAST_EPOCHS, 1_973_944, loss=lambda: losses.CategoricalCrossentropy(label_smoothing=0.2),
             prepare=prepare_fast, augment=lambda: augment.FlipTranslate(pad=2, flips="alternating"), tta=True,
             callbacks=lambda: [FreezeAfter("conv2d/b", 3)],
             keras_twin=False,
             notes="examples/train_cifar_fast.py trains it (whitening from the data, crops and flips per "
                   "epoch, test-time augmentation)"),
]}

DEFAULT = "tutorial000"


def get(name):
    if name not in MODELS:
        raise ValueError(f"unknown zoo model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]


def table():
    """Markdown table: model, tutorial file, what it is, params, protocol."""
    rows = ["| model | tutorial | architecture | params | dataset | protocol |", "| --- | --- | --- | --- | --- | --- |"]
    for e in MODELS.values():
        rows.append(f"| `{e.name}` | `{e.tutorial}` | {e.description} | {e.params:,} | {e.dataset} | {e.protocol()} |")
    return "\n".join(rows)
