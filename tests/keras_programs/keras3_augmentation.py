# keras-io's "Image classification from scratch", in miniature and on random data: Keras 3's
# augmentation layers at the front of the model, active in fit only. Runs under Keras 3; the test
# renames `keras` to `minicnn`.
import numpy as np
import keras
from keras import layers

rng = np.random.default_rng(2)
x_train = rng.random((64, 16, 16, 3)).astype("float32")
y_train = keras.utils.to_categorical(rng.integers(0, 10, 64), 10)

data_augmentation = [layers.RandomFlip("horizontal"), layers.RandomTranslation(0.1, 0.1),
                     layers.RandomRotation(0.1), layers.RandomZoom(0.1)]
model = keras.Sequential([keras.Input(shape=(16, 16, 3)), *data_augmentation,
                          layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
                          layers.Flatten(), layers.Dense(10, activation="softmax")])
model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=16, epochs=2, validation_split=0.25, verbose=0)
score = model.evaluate(x_train, y_train, verbose=0)
RESULT = {"history": history.history, "scores": score, "predict_shape": model.predict(x_train[:3], verbose=0).shape}
