"""Hugging Face transformers adapters: our samplers and stopping rule inside ``model.generate()``.

Five pieces, for ``transformers`` models (tested with 5.x on a tiny random Llama and MusicGen):

* :class:`SamplingWarper` -- a ``LogitsProcessor`` applying temperature, top-k, top-p and min-p
  exactly as :func:`speechdecode.decoding.sample` defines them: it divides the scores by the
  temperature and sets every token ``sample`` would not draw to -inf, so the softmax +
  ``torch.multinomial`` that ``generate(do_sample=True)`` runs draws from the same
  distribution as ``sample``. Pass ``top_k=0`` (and leave ``top_p`` / ``temperature`` /
  ``min_p`` unset) in ``generate`` so that transformers adds no warper of its own after ours.
* :class:`DurationStoppingProcessor` -- :class:`speechdecode.decoding.DurationGuidedStopping`
  as a ``LogitsProcessor``: per row, EOS is suppressed for the first D_b generated tokens and
  forced right after (steps count from the prompt length).
* :class:`SamplerProcessor` -- any sampler (:mod:`speechdecode.decoding.samplers`) as a
  ``LogitsProcessor`` that draws the token itself and hands ``generate`` a row with one finite
  entry, for models whose own ``generate`` refuses ``custom_generate`` (MusicGen: one row per
  batch item and codebook, its CFG included); :class:`RepetitionAwareProcessor` is it with RAS.
* :func:`ras_generate` -- a ``custom_generate`` callable (transformers 5.x accepts a callable
  as well as a Hub repository: ``generate`` prepares inputs, cache, processors and stopping
  criteria, then hands the decoding loop to it, with keywords its signature names). It runs
  repetition-aware sampling (:func:`speechdecode.decoding.ras`), which a ``LogitsProcessor``
  cannot express because it looks at the drawn token and may draw again. Batched, with the
  model's KV cache; the history is the generated tokens only.

transformers is an optional dependency (``pip install speechdecode[hf]``); importing this
module without it raises :class:`~speechdecode.errors.BackendUnavailableError`.
"""

from __future__ import annotations

import contextlib
import numbers

import torch

from speechdecode import _args, _tensors
from speechdecode._deprecation import keywords
from speechdecode.decoding.samplers import RasSampler, check_sampler, draw, draw_guided
from speechdecode.decoding.stopping import DurationGuidedStopping
from speechdecode.errors import BackendUnavailableError, InvalidArgumentError, TensorError
from speechdecode.kernels.ras import ras
from speechdecode.kernels.ras.api import RAS_FIELDS, RasOptions
from speechdecode.kernels.sampling import keep_mask

try:
    from transformers import LogitsProcessor
    from transformers.generation.utils import GenerateDecoderOnlyOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra installed
    raise BackendUnavailableError(
        f"speechdecode.models.hf needs transformers ({exc}); `pip install speechdecode[hf]`"
    ) from exc

__all__ = [
    "DurationStoppingProcessor",
    "RepetitionAwareProcessor",
    "SamplerProcessor",
    "SamplingWarper",
    "ras_generate",
]


@contextlib.contextmanager
def added_logits_processors(model, processors):
    """Run ``model.generate`` with ``processors`` added to the logits processors it builds.

    Dia's ``generate`` (transformers 5.x) drops its ``logits_processor=`` argument: its
    ``_get_logits_processor`` builds its own list and never reads the one it is given, so a
    processor passed there is silently ignored. Inside this block the model's list gets
    ``processors`` after its own (guidance, EOS channel filter, warpers) and before Dia's final
    EOS delay-pattern processor, which must see the drawn token to force the end of each channel.
    For models that honour ``logits_processor=`` it has the same effect as passing them there.

    Example:
        >>> with added_logits_processors(dia, [RepetitionAwareProcessor(preset="cosyvoice")]):
        ...     codes = dia.generate(**inputs, max_new_tokens=256)  # doctest: +SKIP
    """
    build = model._get_logits_processor

    def with_ours(*args, **kwargs):
        built = build(*args, **kwargs)
        at = len(built)
        if at and type(built[-1]).__name__ == "DiaEOSDelayPatternLogitsProcessor":
            at -= 1
        for processor in processors:
            built.insert(at, processor)
            at += 1
        return built

    model._get_logits_processor = with_ours
    try:
        yield model
    finally:
        del model._get_logits_processor


class SamplingWarper(LogitsProcessor):
    """``LogitsProcessor`` with :func:`speechdecode.decoding.sample`'s filters.

    Args:
        temperature, top_k, top_p, min_p: as for ``sample`` (scalars or [B] tensors; None
            switches a filter off; temperature 0 keeps only the first maximum: greedy).

    ``warper(input_ids, scores)`` returns a new [B, V] float tensor: ``scores / temperature``
    where ``sample`` could draw the token, -inf elsewhere (greedy rows: 0 at the first maximum).

    Raises:
        InvalidArgumentError / TensorError as ``sample`` does, at the first call (values are
        checked against the batch they are applied to).

    Example:
        >>> model.generate(ids, do_sample=True, top_k=0, max_new_tokens=20,
        ...                logits_processor=[SamplingWarper(top_k=25, top_p=0.8)])  # doctest: +SKIP
    """

    def __init__(self, temperature=1.0, top_k=None, top_p=None, min_p=None):
        self.temperature, self.top_k, self.top_p, self.min_p = temperature, top_k, top_p, min_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        keep = keep_mask(scores, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p, min_p=self.min_p)
        t = self.temperature
        if isinstance(t, numbers.Number):
            x = scores.float() / (1.0 if t == 0 else float(t))
        else:
            t = torch.as_tensor(t, dtype=torch.float32, device=scores.device)
            x = scores.float() / torch.where(t == 0, torch.ones_like(t), t)[:, None]
        return x.masked_fill(~keep, float("-inf"))


class DurationStoppingProcessor(LogitsProcessor):
    """``LogitsProcessor`` for RALL-E duration-guided stopping inside ``generate``.

    Args:
        durations: [B, L] integer frames per phoneme or [B] totals D_b (as for
            :class:`~speechdecode.decoding.DurationGuidedStopping`).
        eos_id: the EOS token id (also pass it to ``generate`` as ``eos_token_id`` so that a
            row stops once EOS is drawn).
        prompt_length: length of the prompt ``input_ids`` handed to ``generate``; the step of a
            call is ``input_ids.shape[1] - prompt_length`` (tokens generated so far).

    Row b generates exactly D_b tokens other than EOS, then EOS.

    Raises:
        InvalidArgumentError: ``prompt_length`` not an integer >= 0, or a call whose
            ``input_ids`` are shorter than the prompt. Errors of ``DurationGuidedStopping``.

    Example:
        >>> stop = DurationStoppingProcessor(durations, eos_id=0, prompt_length=ids.shape[1])  # doctest: +SKIP
        >>> model.generate(ids, logits_processor=[stop], eos_token_id=0, pad_token_id=0)  # doctest: +SKIP
    """

    def __init__(self, durations, eos_id: int, prompt_length: int):
        self.stopping = DurationGuidedStopping(durations, eos_id)
        self.prompt_length = _args.integer(prompt_length, "prompt_length", 0)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        if step < 0:
            raise InvalidArgumentError(
                "input_ids", f"at least prompt_length={self.prompt_length} columns", input_ids.shape[1]
            )
        return self.stopping(step, scores)


class SamplerProcessor(LogitsProcessor):
    """Any :class:`~speechdecode.decoding.samplers.Sampler` as a ``LogitsProcessor`` that draws
    the token itself.

    Each call draws one token per row with ``sampler(scores, history)`` (history: the row's
    tokens generated since the prompt, on the scores' device) and returns scores whose only
    finite entry is the drawn token (0; -inf elsewhere), so whatever ``generate`` does next --
    greedy argmax, or softmax + multinomial after its top-k / top-p / temperature warpers --
    picks that token. It works where ``custom_generate`` does not: in multi-codebook models whose
    ``generate`` is their own (MusicGen, whose processors see one row per batch item and
    codebook), one history per row and codebook.

    Args:
        sampler: the sampler (``reset()`` is called when a new ``generate`` starts).
        guidance_scale: MusicGen's ``guidance_scale``, when ``generate`` gets one: its
            classifier-free guidance runs after the user's processors, so this one sees the
            conditional and unconditional halves, guides them (``u + (c - u) * s``) before
            drawing -- fused into the draw when the sampler has ``guided()``, as
            :class:`~speechdecode.decoding.FilterSampler` has -- and hands the guidance
            processor halves it turns into the drawn token.

    A call whose ``input_ids`` are not one longer than the last call's (a new ``generate``)
    starts over: the prompt is what ``input_ids`` holds at the first call. Ids outside the
    vocabulary (MusicGen's delay-pattern pad) are -1 (none) in the history. CSM: pass it as
    ``logits_processor=`` for the backbone (codebook 0; its 3-D ``input_ids`` after the first
    step are the frames so far) and through :func:`added_logits_processors` on
    ``model.depth_decoder`` for the other codebooks (its ``generate`` takes no processors; each
    frame is a new call there, so the history is the frame's earlier codebooks).

    Raises:
        InvalidArgumentError: not a sampler, a bad guidance scale (at construction); guided
            scores without ``guidance_scale``.
        TensorError: scores whose rows do not match ``input_ids`` (once or twice); a sampler
            output that is not [N] tokens in [0, V).
    """

    def __init__(self, sampler, guidance_scale: float | None = None):
        self.sampler = check_sampler(sampler)
        self.guidance_scale = None if guidance_scale is None else _args.real(guidance_scale, "guidance_scale")
        self._prompt_length: int | None = None
        self._last_length = -1

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        rows = input_ids.shape[0]
        guided = scores.ndim == 2 and scores.shape[0] == 2 * rows and rows > 0
        if scores.ndim != 2 or not (scores.shape[0] == rows or guided):
            raise TensorError(
                "scores", f"[{rows}, V] or [{2 * rows}, V] (cond, uncond halves)", _tensors._describe(scores)
            )
        if guided and self.guidance_scale is None:
            raise InvalidArgumentError(
                "guidance_scale", "the guidance_scale given to generate (scores come as cond/uncond halves)", None
            )
        if input_ids.ndim == 3:  # CSM's backbone after its first step: the frames so far [B, n, K]
            generated = input_ids[..., 0]  # it draws codebook 0; the text prompt came in 2-D
        else:
            length = input_ids.shape[1]
            if self._prompt_length is None or length != self._last_length + 1:
                self._prompt_length = length  # a new generate call
                self.sampler.reset(None)
            self._last_length = length
            generated = input_ids[:, self._prompt_length :]
        history = torch.where((generated >= 0) & (generated < scores.shape[1]), generated, -1)
        if not guided:
            tokens = draw(self.sampler, scores, history)
        else:  # MusicGen runs its CFG processor after the user's: we see both halves
            cond, uncond = scores.split(rows)
            tokens = draw_guided(self.sampler, cond, uncond, self.guidance_scale, history)
        out = torch.full((rows, scores.shape[1]), float("-inf"), dtype=scores.dtype, device=scores.device)
        out.scatter_(1, tokens[:, None], 0.0)
        if guided:  # the CFG processor then computes 0 + s * (out - 0): the same single finite entry
            out = torch.cat([out, torch.zeros_like(out)])
        return out


class RepetitionAwareProcessor(SamplerProcessor):
    """Repetition-aware sampling inside ``generate``: a :class:`SamplerProcessor` over
    :class:`~speechdecode.decoding.samplers.RasSampler`.

    Args:
        options: ``window``, ``threshold``, ``top_k``, ``top_p``, ``preset`` as for
            :func:`~speechdecode.decoding.ras`.
        temperature: divides the scores before RAS (> 0).
        guidance_scale: as for :class:`SamplerProcessor` (MusicGen's, when ``generate`` has one).
        generator: torch.Generator for RAS's uniforms (two per row per step).

    Raises:
        InvalidArgumentError: bad RAS options, temperature or guidance scale (at construction).

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> processor = RepetitionAwareProcessor(preset="cosyvoice", guidance_scale=3.0, generator=gen)
        >>> musicgen.generate(**inputs, do_sample=True, guidance_scale=3.0, max_new_tokens=256,
        ...                   logits_processor=[processor])  # doctest: +SKIP
    """

    def __init__(
        self,
        *legacy,
        temperature: float = 1.0,
        guidance_scale: float | None = None,
        generator: torch.Generator | None = None,
        **options,
    ):
        if legacy:  # the old positional order: window, threshold, top_k, top_p, preset, temperature, ...
            given = {"temperature": temperature, "guidance_scale": guidance_scale, "generator": generator}
            options, given = keywords("RepetitionAwareProcessor()", legacy, options, RAS_FIELDS, given)
            temperature, guidance_scale, generator = given.values()
        super().__init__(RasSampler(temperature=temperature, generator=generator, **options), guidance_scale)


def ras_generate(
    model,
    input_ids: torch.LongTensor,
    logits_processor,
    stopping_criteria,
    generation_config,
    synced_gpus: bool = False,
    streamer=None,
    *,
    ras_window: int = 10,
    ras_threshold: float = 0.1,
    ras_top_k: int | None = None,
    ras_top_p: float = 0.8,
    ras_preset: str = "paper",
    ras_generator: torch.Generator | None = None,
    **model_kwargs,
):
    """Decoding loop with repetition-aware sampling, for ``model.generate(custom_generate=...)``.

    Pass it as ``custom_generate=ras_generate``; ``generate`` calls it with the prepared
    arguments. Its own options go to ``generate`` as keywords (they never reach the model):

    Args:
        ras_window, ras_threshold, ras_top_k, ras_top_p, ras_preset: ``window``, ``threshold``,
            ``top_k``, ``top_p``, ``preset`` of :func:`speechdecode.decoding.ras`.
        ras_generator: torch.Generator for the uniforms; each step draws ``[B, 2]`` uniforms
            from it (``torch.rand``), as ``ras`` does without ``uniforms``.

    Each step: one forward on the new token (KV cache from ``generate``), the logits processors
    of ``generate`` (e.g. :class:`DurationStoppingProcessor`), then ``ras`` with each row's
    generated tokens as history (the prompt excluded). ``do_sample``, ``top_k``, ``top_p`` and
    ``temperature`` of the generation config are not used: RAS is the sampler. Rows stop at EOS
    (``eos_token_id``) and then get ``pad_token_id``; all stop at ``max_new_tokens`` /
    ``max_length`` (``generate``'s stopping criteria).

    Returns:
        [B, prompt + generated] token ids, or a ``GenerateDecoderOnlyOutput`` (sequences, and
        scores when ``output_scores``) with ``return_dict_in_generate=True``.

    Raises:
        InvalidArgumentError: bad RAS options (as ``ras``), an encoder-decoder model,
            ``synced_gpus`` or a streamer, beam search (``num_beams`` > 1) or contrastive search
            (``penalty_alpha``): not supported, and never silently ignored.

    Example:
        >>> gen = torch.Generator().manual_seed(0)
        >>> out = model.generate(ids, custom_generate=ras_generate, max_new_tokens=50,
        ...                      ras_preset="cosyvoice", ras_generator=gen)  # doctest: +SKIP
    """
    options = RasOptions(ras_window, ras_threshold, ras_top_k, ras_top_p, ras_preset)
    if model.config.is_encoder_decoder:
        raise InvalidArgumentError("model", "a decoder-only causal LM", type(model).__name__)
    if synced_gpus or streamer is not None:
        raise InvalidArgumentError("synced_gpus/streamer", "not set (unsupported by ras_generate)", "set")
    for option, plain in (("num_beams", 1), ("num_beam_groups", 1), ("penalty_alpha", None)):
        value = getattr(generation_config, option, plain)
        if value is not None and value != plain:
            raise InvalidArgumentError(option, f"{plain} (ras_generate samples one sequence per row)", value)
    pad = generation_config._pad_token_tensor
    has_eos = any(hasattr(c, "eos_token_id") for c in stopping_criteria)
    keep_scores = generation_config.return_dict_in_generate and generation_config.output_scores
    scores = () if keep_scores else None
    prompt_length = input_ids.shape[1]
    unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    outputs = model._prefill(input_ids, generation_config, model_kwargs)
    while True:
        model_kwargs = model._update_model_kwargs_for_generation(outputs, model_kwargs)
        logits = outputs.logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
        processed = logits_processor(input_ids, logits)
        if keep_scores:
            scores += (processed,)
        history = input_ids[:, prompt_length:][:, -options.window :]
        tokens = ras(processed, history, generator=ras_generator, **options.asdict())
        if has_eos:
            tokens = torch.where(unfinished, tokens, pad)
        input_ids = torch.cat([input_ids, tokens[:, None]], dim=-1)
        unfinished = unfinished & ~stopping_criteria(input_ids, scores)
        if not bool(unfinished.any()):
            break
        step_length = 1 if model_kwargs.get("use_cache", True) else None
        model_inputs = model.prepare_inputs_for_generation(input_ids, next_sequence_length=step_length, **model_kwargs)
        outputs = model(**model_inputs, return_dict=True)

    if generation_config.return_dict_in_generate:
        return GenerateDecoderOnlyOutput(sequences=input_ids, scores=scores)
    return input_ids
