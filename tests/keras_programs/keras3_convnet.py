# keras-io's "Simple MNIST convnet", shortened and on random data: `import keras`, keras.Input,
# keras.utils.to_categorical, a callback. Runs under Keras 3; the test renames `keras` to `minicnn`.
import numpy as np
import keras
from keras import layers

num_classes, input_shape = 10, (28, 28, 1)
rng = np.random.default_rng(1)
x_train = rng.random((80, 28, 28, 1)).astype("float32")
y_train = keras.utils.to_categorical(rng.integers(0, num_classes, 80), num_classes)

model = keras.Sequential([
    keras.Input(shape=input_shape),
    layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
    layers.MaxPooling2D(pool_size=(2, 2)),
    layers.Flatten(),
    layers.Dropout(0.5),
    layers.Dense(num_classes, activation="softmax"),
])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=3)
history = model.fit(x_train, y_train, batch_size=16, epochs=2, validation_split=0.1, callbacks=[stop], verbose=0)
score = model.evaluate(x_train, y_train, verbose=0)
RESULT = {"history": history.history, "scores": score, "predict_shape": model.predict(x_train[:3], verbose=0).shape}
