# TensorFlow's CNN tutorial, shortened and on random data: `from tensorflow.keras import ...`,
# activation layers (LeakyReLU, ReLU, Softmax), sparse labels. Runs under TensorFlow 2 / Keras 3;
# the test renames `tensorflow.keras` to `minicnn` and runs it.
import numpy as np
from tensorflow.keras import datasets, layers, models

rng = np.random.default_rng(0)
train_images, test_images = rng.random((64, 16, 16, 3)), rng.random((32, 16, 16, 3))
train_labels, test_labels = rng.integers(0, 10, (64, 1)), rng.integers(0, 10, (32, 1))
assert hasattr(datasets, "cifar10")

model = models.Sequential()
model.add(layers.Conv2D(8, (3, 3), activation="relu", input_shape=(16, 16, 3)))
model.add(layers.MaxPooling2D((2, 2)))
model.add(layers.Conv2D(16, (3, 3)))
model.add(layers.LeakyReLU(negative_slope=0.1))
model.add(layers.Flatten())
model.add(layers.Dense(32))
model.add(layers.ReLU())
model.add(layers.Dense(10))
model.add(layers.Softmax())
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(train_images, train_labels, epochs=2, validation_data=(test_images, test_labels), verbose=0)
test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
RESULT = {"history": history.history, "scores": [test_loss, test_acc],
          "predict_shape": model.predict(test_images, verbose=0).shape}
