# The "toy ResNet" of keras-io's Functional API guide, smaller and on random data: keras.Input, layer
# calls, layers.add for the skip connections, keras.Model(inputs, outputs), a from_logits loss.
# Runs under Keras 3; the test renames `keras` to `minicnn`.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(2)
x_train = rng.random((64, 16, 16, 3)).astype("float32")
y_train = keras.utils.to_categorical(rng.integers(0, 10, 64), 10)

inputs = keras.Input(shape=(16, 16, 3), name="img")
x = layers.Conv2D(8, 3, activation="relu")(inputs)
x = layers.Conv2D(16, 3, activation="relu")(x)
block_1_output = layers.MaxPooling2D(3)(x)

x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_1_output)
x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
block_2_output = layers.add([x, block_1_output])

x = layers.Conv2D(16, 3, activation="relu", padding="same")(block_2_output)
x = layers.Conv2D(16, 3, activation="relu", padding="same")(x)
block_3_output = layers.add([x, block_2_output])

x = layers.Conv2D(16, 3, activation="relu")(block_3_output)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(32, activation="relu")(x)
x = layers.Dropout(0.5)(x)
outputs = layers.Dense(10)(x)

model = keras.Model(inputs, outputs, name="toy_resnet")
model.summary()
model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
              loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=16, epochs=2, validation_split=0.2, verbose=0)
score = model.evaluate(x_train, y_train, verbose=0)
RESULT = {"history": history.history, "scores": score, "predict_shape": model.predict(x_train[:3], verbose=0).shape}
