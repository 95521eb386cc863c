//! Which device candle runs on. CUDA exists only in builds with the `cuda` feature.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use super::{EncoderError, Result};

/// `cpu`, `cuda[:N]` or `auto` (CUDA when built with it and a GPU answers, else CPU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    Cuda(usize),
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cpu" => Ok(DeviceSpec::Cpu),
            "auto" => Ok(DeviceSpec::Auto),
            "cuda" => Ok(DeviceSpec::Cuda(0)),
            _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(DeviceSpec::Cuda(n)),
                _ => Err(format!(
                    "unknown device {s:?}: expected cpu, cuda, cuda:N or auto"
                )),
            },
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Auto => write!(f, "auto"),
        }
    }
}

impl DeviceSpec {
    /// Open the device. Asking for CUDA in a build without it is an error, not a fallback.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Cuda(n) => open_cuda(n),
            DeviceSpec::Auto => Ok(open_cuda(0).unwrap_or(Device::Cpu)),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(n: usize) -> Result<Device> {
    // candle appends a backtrace to some errors; the first line is the message.
    Device::new_cuda(n).map_err(|e| {
        let msg = e.to_string();
        EncoderError::Device(format!("cuda:{n}: {}", msg.lines().next().unwrap_or("")))
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(n: usize) -> Result<Device> {
    Err(EncoderError::Device(format!(
        "cuda:{n} requested, but this binary was built without the `cuda` feature"
    )))
}

/// Floating-point type the model runs in: `f32`, `f16`, `bf16`, or `auto` (f32 on the
/// CPU, f16 on CUDA). Vectors always come out as f32 and are L2-normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeSpec {
    #[default]
    Auto,
    F32,
    F16,
    Bf16,
}

impl FromStr for DTypeSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DTypeSpec::Auto),
            "f32" => Ok(DTypeSpec::F32),
            "f16" => Ok(DTypeSpec::F16),
            "bf16" => Ok(DTypeSpec::Bf16),
            _ => Err(format!(
                "unknown dtype {s:?}: expected auto, f32, f16 or bf16"
            )),
        }
    }
}

impl DTypeSpec {
    /// The dtype to run in on `device`. Half precision on the CPU is allowed (it is how
    /// the parity test checks the half-precision path) but slower than f32 there.
    pub fn resolve(self, device: &Device) -> candle_core::DType {
        use candle_core::DType;
        match self {
            DTypeSpec::F32 => DType::F32,
            DTypeSpec::F16 => DType::F16,
            DTypeSpec::Bf16 => DType::BF16,
            DTypeSpec::Auto if device.is_cuda() => DType::F16,
            DTypeSpec::Auto => DType::F32,
        }
    }
}
