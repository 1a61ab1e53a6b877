"""Drop-in faces of the APIs ASR users already call, on speechdecode's searches.

* :mod:`speechdecode.compat.pyctcdecode`: ``build_ctcdecoder`` and ``BeamSearchDecoderCTC``
  (pyctcdecode's API, accepted by Hugging Face's ``Wav2Vec2ProcessorWithLM`` and ASR pipeline).
* :mod:`speechdecode.compat.torchaudio`: ``ctc_decoder`` (torchaudio's API: lexicon files, token
  files, emissions ``[B, T, V]``, ``CTCHypothesis`` lists).
"""
