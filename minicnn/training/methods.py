"""Keras's training methods of a model (compile, fit, evaluate, predict, ...), mixed into
Sequential as Keras 3's Model inherits its Trainer: each one hands the work to the model's
Trainer (trainer.py), which holds the loop, the checks and the callbacks."""
from minicnn.training import steps
from minicnn.training.trainer import Trainer


def _keras2_queue_arguments(kwargs):
    """Keras 2's *_generator methods took a worker queue's settings; minicnn reads batches in turn."""
    unknown = set(kwargs) - {"workers", "use_multiprocessing", "max_queue_size"}
    if unknown:
        raise TypeError(f"unexpected argument(s): {sorted(unknown)}")


def _no_weights(*weights):
    if any(w is not None for w in weights):
        raise ValueError("sample_weight and class_weight are not supported: minicnn weighs every sample the same")


def _one_batch(x):
    """test_on_batch's and predict_on_batch's batch size: all of x (evaluate and predict check x)."""
    return max(len(x), 1) if hasattr(x, "__len__") else None


class TrainingMethods:
    """compile / fit / evaluate / predict / train_on_batch (and Keras 2's *_generator) for a model."""

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Record the optimizer, the loss and the metrics (Trainer.compile: who owns a softmax head's
        softmax is decided there, once)."""
        self.trainer.compile(optimizer, loss, metrics, **kwargs)

    @property
    def trainer(self):
        """The Trainer that runs fit/evaluate/predict on this model (made on first use)."""
        if self.__dict__.get("_trainer") is None:
            self._trainer = Trainer(self)
        return self._trainer

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose=1, callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, initial_epoch=0, validation_batch_size=None, cuda_graph=None,
            augment=None, steps_per_epoch=None, validation_steps=None, **kwargs):
        """Train for `epochs` epochs (counted from initial_epoch); returns the History callback.

        x, y: arrays; or x a generator / Keras Sequence of (x, y) batches (steps_per_epoch of them per
        epoch; a Sequence's length by default), validation_data likewise (validation_steps).
        On the GPU the arrays are uploaded once and every full-size step after the first replays a
        CUDA graph (``cuda_graph=False`` runs every step eagerly; see training/graphed.py).
        ``augment`` (minicnn's own): a callable f(x, epoch) -> array like x, applied to the whole
        training set at the start of every epoch, where the data live (e.g. augment.FlipTranslate)."""
        if kwargs:
            raise TypeError(f"fit() got unexpected argument(s): {sorted(kwargs)}")
        return self.trainer.fit(x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
                                shuffle, initial_epoch, validation_batch_size, cuda_graph, augment,
                                steps_per_epoch, validation_steps)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, steps=None):
        """Loss and accuracy over (x, y) in inference mode; returns [loss, accuracy] like Keras."""
        return self.trainer.evaluate(x, y, batch_size, verbose, return_dict, steps)

    def predict(self, x, batch_size=None, verbose=0, steps=None):
        """Outputs for x, computed batch by batch in inference mode; a NumPy array (N, ...)."""
        return self.trainer.predict(x, batch_size, verbose, steps)

    # Keras 2's generator methods (deprecated there too): fit, evaluate and predict take generators
    def fit_generator(self, generator, steps_per_epoch=None, epochs=1, verbose=1, callbacks=None,
                      validation_data=None, validation_steps=None, initial_epoch=0, shuffle=True, **keras2):
        """Keras 2's fit_generator (workers, use_multiprocessing and max_queue_size are ignored)."""
        _keras2_queue_arguments(keras2)
        return self.fit(generator, None, epochs=epochs, verbose=verbose, callbacks=callbacks,
                        validation_data=validation_data, initial_epoch=initial_epoch, shuffle=shuffle,
                        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps)

    def evaluate_generator(self, generator, steps=None, verbose=0, **keras2):
        _keras2_queue_arguments(keras2)
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self, generator, steps=None, verbose=0, **keras2):
        _keras2_queue_arguments(keras2)
        return self.predict(generator, steps=steps, verbose=verbose)

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One update on one batch; returns [loss, accuracy] of that batch (before the update), or
        Keras's dict with return_dict=True."""
        _no_weights(sample_weight, class_weight)
        return self.trainer.train_on_batch(x, y, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Keras's test_on_batch: evaluate on this one batch, in inference mode."""
        _no_weights(sample_weight)
        return self.evaluate(x, y, batch_size=_one_batch(x), verbose=0, return_dict=return_dict)

    def predict_on_batch(self, x):
        """Keras's predict_on_batch: the outputs for this one batch, in inference mode."""
        return self.predict(x, batch_size=_one_batch(x), verbose=0)

    def _prepare_training(self):
        self.trainer.prepare()

    def _loss_and_grad(self, out, y):
        """The batch's mean loss after backward through the model (training/steps.py)."""
        return steps.loss_and_backward(self, out, y)

