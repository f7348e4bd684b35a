"""`MelCodec`: speech as discrete codes, and back. A log-mel spectrogram (librosa) is quantised frame by frame
with residual vector quantisation (RVQ: each codebook codes what the previous ones left), and decoded by
Griffin-Lim phase reconstruction (librosa's `mel_to_stft` and `griffinlim`), so the only learned part is the codebooks.

Neural codecs (EnCodec, DAC, Mimi in transformers) need hours of GPU training to beat this; a mel RVQ fitted
in seconds on espeak-ng speech is what a tiny CPU talker can predict. The codebooks are fitted with residual
k-means, written here because no library in our stack fits RVQ codebooks without a training loop.
"""

import numpy as np
import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from theworld.omni.audio import SAMPLING_RATE

__all__ = ["MelCodec"]


class MelCodec(nn.Module, PyTorchModelHubMixin):
    def __init__(
        self,
        sampling_rate: int = SAMPLING_RATE,
        n_fft: int = 1024,
        hop_length: int = 320,
        n_mels: int = 80,
        num_quantizers: int = 4,
        codebook_size: int = 256,
        griffin_lim_iterations: int = 48,
    ):
        super().__init__()
        self.sampling_rate, self.n_fft, self.hop_length, self.n_mels = sampling_rate, n_fft, hop_length, n_mels
        self.num_quantizers, self.codebook_size = num_quantizers, codebook_size
        self.griffin_lim_iterations = griffin_lim_iterations
        self.register_buffer("mel_mean", torch.zeros(n_mels))
        self.register_buffer("mel_std", torch.ones(n_mels))
        self.register_buffer("codebooks", torch.zeros(num_quantizers, codebook_size, n_mels))

    @property
    def frames_per_second(self) -> float:
        return self.sampling_rate / self.hop_length

    # ----------------------------------------------------------------------------------------- mel
    def mel(self, audio: np.ndarray) -> torch.Tensor:
        """Normalised log-mel frames (T, n_mels) of 16 kHz samples."""
        import librosa

        power = librosa.feature.melspectrogram(
            y=audio.astype(np.float32),
            sr=self.sampling_rate,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            n_mels=self.n_mels,
            fmin=0,
            fmax=self.sampling_rate / 2,
        )
        log_mel = torch.from_numpy(np.log(np.maximum(power, 1e-5)).T.copy())
        return (log_mel - self.mel_mean) / self.mel_std

    def mel_to_audio(self, mel: torch.Tensor) -> np.ndarray:
        """Samples from normalised log-mel frames, phase by Griffin-Lim."""
        import librosa

        power = torch.exp(mel.float() * self.mel_std + self.mel_mean).T.numpy()
        magnitude = librosa.feature.inverse.mel_to_stft(
            power, sr=self.sampling_rate, n_fft=self.n_fft, fmin=0, fmax=self.sampling_rate / 2
        )
        # librosa's mel_to_audio starts Griffin-Lim from a random phase drawn from numpy's global generator, so the
        # same answer would sound different on every call; a fixed phase seed makes speech a function of the text.
        audio = librosa.griffinlim(
            magnitude,
            n_iter=self.griffin_lim_iterations,
            hop_length=self.hop_length,
            n_fft=self.n_fft,
            random_state=0,
        )
        peak = float(np.abs(audio).max()) if audio.size else 0.0
        return (audio * (0.9 / peak) if peak > 0.9 else audio).astype(np.float32)

    # ---------------------------------------------------------------------------------------- codes
    def quantize(self, mel: torch.Tensor) -> torch.LongTensor:
        """(T, n_mels) -> codes (T, num_quantizers)."""
        residual, codes = mel.float(), []
        for codebook in self.codebooks:
            index = torch.cdist(residual, codebook).argmin(-1)
            codes.append(index)
            residual = residual - codebook[index]
        return torch.stack(codes, -1)

    def dequantize(self, codes: torch.LongTensor) -> torch.Tensor:
        """(T, num_quantizers) -> (T, n_mels)."""
        return sum(codebook[codes[:, q]] for q, codebook in enumerate(self.codebooks))

    def encode(self, audio: np.ndarray) -> torch.LongTensor:
        return self.quantize(self.mel(audio))

    def decode(self, codes: torch.LongTensor) -> np.ndarray:
        if len(codes) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.mel_to_audio(self.dequantize(codes))

    # ------------------------------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, recordings: list[np.ndarray], iterations: int = 20, seed: int = 0) -> float:
        """Fit the normalisation and the codebooks on `recordings`; returns the mean squared error per value of
        the quantised mel (in normalised units)."""
        self.mel_mean.zero_(), self.mel_std.fill_(1.0)
        frames = torch.cat([self.mel(audio) for audio in recordings])
        self.mel_mean.copy_(frames.mean(0))
        self.mel_std.copy_(frames.std(0).clamp_min(1e-3))
        frames = (frames - self.mel_mean) / self.mel_std
        generator = torch.Generator().manual_seed(seed)
        residual = frames
        for codebook in self.codebooks:
            codebook.copy_(_kmeans(residual, self.codebook_size, iterations, generator))
            residual = residual - codebook[torch.cdist(residual, codebook).argmin(-1)]
        return float(residual.pow(2).mean())


def _kmeans(points: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    if len(points) >= k:
        centroids = points[torch.randperm(len(points), generator=generator)[:k]].clone()
    else:  # fewer frames than codes (tiny test data): some codes start on the same frame
        centroids = points[torch.randint(len(points), (k,), generator=generator)].clone()
    for _ in range(iterations):
        assignment = torch.cdist(points, centroids).argmin(-1)
        counts = torch.bincount(assignment, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        empty = counts == 0  # an empty cluster restarts on a random point rather than dying
        centroids = torch.where(
            empty[:, None],
            points[torch.randint(len(points), (k,), generator=generator)],
            sums / counts.clamp_min(1)[:, None],
        )
    return centroids
