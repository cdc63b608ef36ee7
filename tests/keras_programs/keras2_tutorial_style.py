# A Keras 2 program in the style of tutorial 004 (keras.layers.convolutional, np_utils, maxnorm,
# the backend's image_data_format), on a small random dataset. It runs under Keras 2; the test
# renames `keras` to `minicnn` and runs it.
import numpy as np
from keras.models import Sequential
from keras.layers import Dense, Dropout, Flatten
from keras.layers.convolutional import Conv2D, MaxPooling2D
from keras.constraints import maxnorm
from keras.optimizers import SGD
from keras.utils import np_utils
from keras import backend as K

seed = 7
np.random.seed(seed)
X = np.random.rand(96, 32, 32, 3).astype("float32")
y = np_utils.to_categorical(np.random.randint(0, 10, 96))
if K.image_data_format() == "channels_first":
    X = X.transpose(0, 3, 1, 2)

model = Sequential()
model.add(Conv2D(8, (3, 3), input_shape=(32, 32, 3), padding="same", activation="relu",
                 kernel_constraint=maxnorm(3)))
model.add(Dropout(0.2))
model.add(MaxPooling2D(pool_size=(2, 2)))
model.add(Flatten())
model.add(Dense(16, activation="relu", kernel_constraint=maxnorm(3)))
model.add(Dense(10, activation="softmax"))
sgd = SGD(lr=0.01, momentum=0.9, decay=0.01 / 2, nesterov=False)
model.compile(loss="categorical_crossentropy", optimizer=sgd, metrics=["accuracy"])
history = model.fit(X, y, validation_split=0.25, epochs=2, batch_size=32, verbose=0)
scores = model.evaluate(X, y, verbose=0)
RESULT = {"history": history.history, "scores": scores, "predict_shape": model.predict(X[:5]).shape}
