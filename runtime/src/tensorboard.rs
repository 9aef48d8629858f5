//! A training run's curves as a TensorBoard event file (`events.out.tfevents.*` in the run
//! folder), which TensorBoard opens as it is: per step the loss and the learning rate, per epoch
//! the training and validation loss, top-1 and top-5, images/s and the mean step time.
//!
//! The file is TFRecord framing around `Event` protobufs (written with prost): each record is the
//! length (u64, little-endian), the masked CRC-32C of those 8 bytes, the data, and the masked
//! CRC-32C of the data. The first event names the format, `brain.Event:2`. CRC-32C is the
//! Castagnoli polynomial (not zlib's CRC-32), masked as TensorFlow does.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::error::RunError;
use crate::progress::EpochRecord;
use crate::train::Event as TrainEvent;

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !data.iter().fold(!0u32, |c, &b| TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

/// TensorFlow's masked CRC: rotated right by 15 bits, plus a constant.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c(data);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// `tensorflow.Event`, the fields written here.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a scalar.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// An open event file.
pub struct EventWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl EventWriter {
    /// A new event file in `dir`, named as TensorFlow names them.
    pub fn create(dir: &Path) -> Result<EventWriter, RunError> {
        let host =
            std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "alexrt".into());
        let secs = now() as u64;
        let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{}.0", std::process::id()));
        let io = |source| RunError::Io { path: path.display().to_string(), source };
        let file = File::create(&path).map_err(io)?;
        let mut w = EventWriter { path: path.clone(), out: BufWriter::new(file) };
        let first =
            Event { wall_time: now(), step: 0, file_version: Some("brain.Event:2".into()), summary: None };
        w.write(&first)?;
        w.flush()?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, e: &Event) -> Result<(), RunError> {
        self.out
            .write_all(&record(&e.encode_to_vec()))
            .map_err(|source| RunError::Io { path: self.path.display().to_string(), source })
    }

    /// Scalars `(tag, value)` at `step`.
    pub fn scalars(&mut self, step: i64, values: &[(&str, f64)]) -> Result<(), RunError> {
        let value = values
            .iter()
            .map(|(tag, v)| SummaryValue { tag: tag.to_string(), simple_value: Some(*v as f32) })
            .collect();
        self.write(&Event { wall_time: now(), step, file_version: None, summary: Some(Summary { value }) })
    }

    pub fn flush(&mut self) -> Result<(), RunError> {
        self.out.flush().map_err(|source| RunError::Io { path: self.path.display().to_string(), source })
    }
}

/// What a training run logs, from the loop's events: `step/loss` and `step/lr` at each step
/// (numbered across epochs), and the `epoch/...` scalars at each epoch's end (numbered by epoch).
pub struct RunLog {
    writer: EventWriter,
    step_seconds: Vec<f64>,
    /// The first error, reported once; nothing more is written after it.
    failed: bool,
}

impl RunLog {
    pub fn create(dir: &Path) -> Result<RunLog, RunError> {
        Ok(RunLog { writer: EventWriter::create(dir)?, step_seconds: Vec::new(), failed: false })
    }

    pub fn path(&self) -> &Path {
        self.writer.path()
    }

    /// Logs `event`; a write error is returned once (the run goes on without the log).
    pub fn record(&mut self, event: &TrainEvent<'_>) -> Result<(), RunError> {
        if self.failed {
            return Ok(());
        }
        let result = match *event {
            TrainEvent::Step { epoch, step, steps, loss, lr, seconds, .. } => {
                self.step_seconds.push(seconds);
                let global = (epoch * steps + step + 1) as i64;
                self.writer.scalars(global, &[("step/loss", loss), ("step/lr", lr)])
            }
            TrainEvent::Epoch(r) => self.epoch(r),
            _ => Ok(()),
        };
        self.failed = result.is_err();
        result
    }

    fn epoch(&mut self, r: &EpochRecord) -> Result<(), RunError> {
        let mean_step = if self.step_seconds.is_empty() {
            0.0
        } else {
            self.step_seconds.iter().sum::<f64>() / self.step_seconds.len() as f64
        };
        self.step_seconds.clear();
        self.writer.scalars(
            r.epoch as i64,
            &[
                ("epoch/train_loss", r.train.loss),
                ("epoch/val_loss", r.val.loss),
                ("epoch/train_top1", r.train.top1),
                ("epoch/val_top1", r.val.top1),
                ("epoch/train_top5", r.train.top5),
                ("epoch/val_top5", r.val.top5),
                ("epoch/images_per_second", r.images_per_second),
                ("epoch/step_seconds", mean_step),
                ("epoch/lr", r.lr),
            ],
        )?;
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_gives_the_published_check_values() {
        // RFC 3720 (iSCSI), appendix B.4, and the CRC catalogue's check value for "123456789".
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
        let ascending: Vec<u8> = (0..32).collect();
        assert_eq!(crc32c(&ascending), 0x46dd_794e);
        let descending: Vec<u8> = (0..32).rev().collect();
        assert_eq!(crc32c(&descending), 0x113f_db5c);
    }

    #[test]
    fn a_record_frames_its_data_with_masked_checksums() {
        let r = record(b"abc");
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[8..12], &masked_crc32c(&3u64.to_le_bytes()).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc32c(b"abc").to_le_bytes());
        // The mask as TensorFlow's crc32c.h writes it: ((c >> 15) | (c << 17)) + 0xa282ead8.
        let c = crc32c(b"abc");
        #[allow(clippy::manual_rotate)]
        let masked = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"abc"), masked);
    }
}
