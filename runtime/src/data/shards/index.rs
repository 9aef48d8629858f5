//! The index of one shard, `shard-NNNNNN.idx`: where each sample's image lies in the tar file,
//! its label and checksum, and what the shard was packed from.
//!
//! The format, every number little-endian:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `ALXSHIDX` |
//! | 4 | version, 2 (version 1, which lacks the square's side, is read as whole images) |
//! | 4, 4, 4, 8 | packing settings: short side, the side of the centre square stored (0: whole images), JPEG quality, target shard size in bytes (an index built by reading another tool's shard: 0, 0, 0, and the shard's modification time in ns) |
//! | 8, 4 | images in the folder's split listing, CRC-32 of the listing (labels and names) |
//! | 8, 8, 8 | listing positions covered, `first..end`, and the unreadable images skipped among them |
//! | 8 | the tar file's length in bytes |
//! | 8 | samples, then per sample 33 bytes: listing position (8), offset of the image's data in the tar (8), its length (8), label (4), CRC-32 of the image's bytes (4), format (1: 0 JPEG, 1 PNG) |
//! | 4 | CRC-32 of everything before it |

/// The first bytes of an index.
pub const MAGIC: &[u8; 8] = b"ALXSHIDX";
pub const VERSION: u32 = 2;
const HEADER_BYTES: usize = 8 + 4 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 8 + 8 + 8;
const ENTRY_BYTES: usize = 33;

/// How a sample's image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Jpeg,
    Png,
}

impl ImageKind {
    /// The extension of its tar member.
    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Jpeg => "jpg",
            ImageKind::Png => "png",
        }
    }
}

/// One sample of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexEntry {
    /// The image's position in the folder's sorted listing (the sample's key).
    pub source: u64,
    /// Where the image's bytes start in the tar file, and how many there are.
    pub offset: u64,
    pub size: u64,
    pub label: u32,
    /// CRC-32 of the image's bytes.
    pub crc: u32,
    pub kind: ImageKind,
}

/// What was packed with which settings: a rerun continues only with the same ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSettings {
    pub short_side: u32,
    /// The side of the centre square a resized image keeps (the short side), or 0 where resized
    /// images are stored whole.
    pub square: u32,
    pub jpeg_quality: u32,
    pub shard_bytes: u64,
    /// Images in the folder's split listing, and the CRC-32 of the listing.
    pub sources: u64,
    pub listing_crc: u32,
}

/// A shard's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    pub settings: PackSettings,
    /// The listing positions this shard covers: its samples and the unreadable images skipped
    /// among them. The shards of a split cover the listing in order, without gaps.
    pub first_source: u64,
    pub end_source: u64,
    pub skipped: u64,
    /// The tar file's length.
    pub tar_bytes: u64,
    pub entries: Vec<IndexEntry>,
}

impl ShardIndex {
    /// The index as its file holds it.
    pub fn encode(&self) -> Vec<u8> {
        let s = &self.settings;
        let mut b = Vec::with_capacity(HEADER_BYTES + self.entries.len() * ENTRY_BYTES + 4);
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.extend_from_slice(&s.short_side.to_le_bytes());
        b.extend_from_slice(&s.square.to_le_bytes());
        b.extend_from_slice(&s.jpeg_quality.to_le_bytes());
        b.extend_from_slice(&s.shard_bytes.to_le_bytes());
        b.extend_from_slice(&s.sources.to_le_bytes());
        b.extend_from_slice(&s.listing_crc.to_le_bytes());
        for v in [self.first_source, self.end_source, self.skipped, self.tar_bytes, self.entries.len() as u64]
        {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for e in &self.entries {
            for v in [e.source, e.offset, e.size] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&e.label.to_le_bytes());
            b.extend_from_slice(&e.crc.to_le_bytes());
            b.push(match e.kind {
                ImageKind::Jpeg => 0,
                ImageKind::Png => 1,
            });
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Reads an index; an error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a shard index (no ALXSHIDX header)".into());
        }
        let version = match bytes.get(8..12) {
            Some(v) => u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
            None => return Err(format!("cut short at {} bytes", bytes.len())),
        };
        if !(1..=VERSION).contains(&version) {
            return Err(format!("index version {version}, but this alexrt reads versions 1 to {VERSION}"));
        }
        // Version 1 lacks the square's 4 bytes.
        let header = if version == 1 { HEADER_BYTES - 4 } else { HEADER_BYTES };
        if bytes.len() < header + 4 {
            return Err(format!("cut short at {} bytes", bytes.len()));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let mut r = Reader { bytes: body, at: 12 };
        let stored_crc = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
        if crc32fast::hash(body) != stored_crc {
            return Err("its checksum does not match its contents (the file is damaged)".into());
        }
        let settings = PackSettings {
            short_side: r.u32(),
            square: if version == 1 { 0 } else { r.u32() },
            jpeg_quality: r.u32(),
            shard_bytes: r.u64(),
            sources: r.u64(),
            listing_crc: r.u32(),
        };
        let (first_source, end_source, skipped, tar_bytes, count) =
            (r.u64(), r.u64(), r.u64(), r.u64(), r.u64());
        if (body.len() - header) as u64 != count.saturating_mul(ENTRY_BYTES as u64) {
            return Err(format!("{count} samples do not fit its length of {} bytes", bytes.len()));
        }
        let mut entries = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let (source, offset, size, label, crc) = (r.u64(), r.u64(), r.u64(), r.u32(), r.u32());
            let kind = match r.u8() {
                0 => ImageKind::Jpeg,
                1 => ImageKind::Png,
                k => return Err(format!("sample {source} has an unknown image format {k}")),
            };
            if offset.checked_add(size).is_none_or(|end| end > tar_bytes) {
                return Err(format!("sample {source} lies past the end of the tar file"));
            }
            if source < first_source || source >= end_source {
                return Err(format!(
                    "sample {source} lies outside the shard's range {first_source}..{end_source}"
                ));
            }
            entries.push(IndexEntry { source, offset, size, label, crc, kind });
        }
        if first_source > end_source || end_source > settings.sources {
            return Err(format!(
                "the range {first_source}..{end_source} does not fit a listing of {} images",
                settings.sources
            ));
        }
        Ok(ShardIndex { settings, first_source, end_source, skipped, tar_bytes, entries })
    }
}

/// Little-endian numbers from a slice whose length was checked beforehand.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        out
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> ShardIndex {
        ShardIndex {
            settings: PackSettings {
                short_side: 256,
                square: 256,
                jpeg_quality: 90,
                shard_bytes: 1 << 30,
                sources: 10,
                listing_crc: 0xdead_beef,
            },
            first_source: 2,
            end_source: 6,
            skipped: 1,
            tar_bytes: 8192,
            entries: vec![
                IndexEntry { source: 2, offset: 512, size: 700, label: 3, crc: 7, kind: ImageKind::Jpeg },
                IndexEntry { source: 5, offset: 2560, size: 90, label: 0, crc: 9, kind: ImageKind::Png },
            ],
        }
    }

    #[test]
    fn an_index_reads_back_as_it_was_written() {
        let index = example();
        let bytes = index.encode();
        assert_eq!(bytes.len(), HEADER_BYTES + 2 * ENTRY_BYTES + 4);
        assert_eq!(ShardIndex::decode(&bytes).unwrap(), index);
    }

    #[test]
    fn a_version_1_index_reads_as_whole_images() {
        // Version 1: no square's side after the short side.
        let v2 = example().encode();
        let mut v1 = [&v2[..8], &1u32.to_le_bytes(), &v2[12..16], &v2[20..v2.len() - 4]].concat();
        v1.extend_from_slice(&crc32fast::hash(&v1).to_le_bytes());
        let mut want = example();
        want.settings.square = 0;
        assert_eq!(ShardIndex::decode(&v1).unwrap(), want);
        let mut v3 = v2.clone();
        v3[8] = 3;
        assert!(ShardIndex::decode(&v3).unwrap_err().contains("index version 3"));
    }

    #[test]
    fn any_changed_byte_or_a_cut_is_refused() {
        let bytes = example().encode();
        for at in [0, 9, 20, HEADER_BYTES + 3, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert!(ShardIndex::decode(&bad).is_err(), "a flipped bit at byte {at} went unseen");
        }
        let err = ShardIndex::decode(&bytes[..bytes.len() - 5]).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        assert!(ShardIndex::decode(b"PK\x03\x04").unwrap_err().contains("not a shard index"));
    }

    #[test]
    fn an_entry_past_the_tar_or_outside_the_range_is_refused() {
        let mut index = example();
        index.entries[1].offset = 8150;
        assert!(ShardIndex::decode(&index.encode()).unwrap_err().contains("past the end"));
        let mut index = example();
        index.entries[0].source = 6;
        assert!(ShardIndex::decode(&index.encode()).unwrap_err().contains("outside the shard's range"));
    }
}
