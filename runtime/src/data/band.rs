//! Decoding only the band of a JPEG's rows that a crop reads.
//!
//! The paper's random crop reads 227 of a packed image's 256 rows, so about one MCU row in
//! sixteen need not be decoded at all. `alexrt pack` writes its JPEGs with a restart marker
//! after each row of MCUs (a DRI of one row; 0.3% larger, no slower to decode whole): the
//! entropy-coded data between two markers decodes on its own (the DC predictions restart there),
//! so the JPEG of MCU rows `r0..=r1` is the same header with the height changed, followed by
//! those rows' segments with their markers renumbered from RST0.
//!
//! 4:2:0 chroma is upsampled from the neighbouring chroma rows, so the band keeps one MCU row
//! more on a side where the crop's edge row takes chroma from the row beyond: the band's pixels
//! are the whole image's, bit for bit (tested below for every crop). Any other JPEG (no restart
//! markers, intervals that do not end with the rows, progressive, damaged) decodes whole.

use image::RgbImage;

/// A decoded band of an image: rows `top..top + image.height()` of an image `height` rows high.
pub struct Band {
    pub image: RgbImage,
    pub top: u32,
    pub height: u32,
}

impl Band {
    /// An image decoded whole.
    pub fn whole(image: RgbImage) -> Self {
        let height = image.height();
        Band { image, top: 0, height }
    }
}

/// Decodes `bytes` as RGB ([`super::decode::decode`]): only the MCU rows that hold rows
/// `rows(width, height)` (first and last, inclusive) where the JPEG allows it, else whole.
pub fn decode_rows(bytes: &[u8], rows: impl FnOnce(u32, u32) -> Option<(u32, u32)>) -> Result<Band, String> {
    let whole = || super::decode::decode(bytes).map(Band::whole);
    let Some(layout) = Layout::read(bytes) else { return whole() };
    let Some((first, last)) = rows(layout.width, layout.height) else { return whole() };
    let Some(band) = layout.band(bytes, first, last) else { return whole() };
    let image = super::decode::decode(&band.bytes)?;
    if image.height() != band.rows || image.width() != layout.width {
        return whole();
    }
    Ok(Band { image, top: band.top, height: layout.height })
}

/// What cutting a band needs of a baseline three-component JPEG with restart markers.
#[derive(Debug)]
struct Layout {
    width: u32,
    height: u32,
    /// Where the frame header's 2-byte height is.
    height_at: usize,
    /// Where the entropy-coded data starts.
    data_at: usize,
    mcu_height: u32,
    /// Restart intervals in a row of MCUs.
    segments_per_row: usize,
    mcu_rows: u32,
    /// Whether chroma is upsampled vertically (rows take chroma from the next MCU row).
    vertical_chroma: bool,
}

struct Cut {
    bytes: Vec<u8>,
    top: u32,
    rows: u32,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?])))
}

impl Layout {
    /// The layout of `bytes`, or `None` for anything but a baseline, single-scan YCbCr JPEG
    /// whose restart intervals end with its MCU rows.
    fn read(bytes: &[u8]) -> Option<Layout> {
        if !bytes.starts_with(&[0xFF, 0xD8]) {
            return None;
        }
        let (mut p, mut frame, mut interval) = (2, None, 0);
        let data_at = loop {
            if *bytes.get(p)? != 0xFF {
                return None;
            }
            let marker = *bytes.get(p + 1)?;
            if marker == 0xFF {
                p += 1;
                continue;
            }
            let len = be16(bytes, p + 2)?;
            let body = bytes.get(p + 4..p + 2 + len.checked_sub(2)? + 2)?;
            match marker {
                0xC0 | 0xC1 => {
                    // Precision, height, width, components and (id, sampling, table) each.
                    let n = usize::from(*body.get(5)?);
                    if body[0] != 8 || n != 3 || body.len() < 6 + 3 * n {
                        return None;
                    }
                    // The largest sampling factors, across and down.
                    let (h, v) = (0..n)
                        .map(|c| body[7 + 3 * c])
                        .fold((1, 1), |(h, v), f| (h.max(f >> 4), v.max(f & 15)));
                    frame = Some((p + 5, be16(body, 1)?, be16(body, 3)?, h, v));
                }
                0xC2..=0xCF if ![0xC4, 0xC8, 0xCC].contains(&marker) => return None,
                0xDD => interval = be16(body, 0)?,
                0xDA => {
                    if body.first() != Some(&3) {
                        return None;
                    }
                    break p + 2 + len;
                }
                0xD0..=0xD9 | 0x01 => return None,
                _ => {}
            }
            p += 2 + len;
        };
        let (height_at, height, width, h, v) = frame?;
        if width == 0 || height == 0 || interval == 0 || !(1..=2).contains(&h) || !(1..=2).contains(&v) {
            return None;
        }
        let (mcu_width, mcu_height) = (8 * h as usize, 8 * v as u32);
        let mcus_per_row = width.div_ceil(mcu_width);
        if mcus_per_row % interval != 0 {
            return None;
        }
        Some(Layout {
            width: width as u32,
            height: height as u32,
            height_at,
            data_at,
            mcu_height,
            segments_per_row: mcus_per_row / interval,
            mcu_rows: (height as u32).div_ceil(mcu_height),
            vertical_chroma: v == 2,
        })
    }

    /// The JPEG of the MCU rows that hold rows `first..=last` (and the chroma rows they take),
    /// or `None` where that is the whole image or the markers are not where they should be.
    fn band(&self, bytes: &[u8], first: u32, last: u32) -> Option<Cut> {
        if first > last || last >= self.height {
            return None;
        }
        let (mut r0, mut r1) = (first / self.mcu_height, last / self.mcu_height);
        if self.vertical_chroma {
            r0 -= u32::from(r0 > 0 && first.is_multiple_of(self.mcu_height));
            r1 += u32::from(r1 + 1 < self.mcu_rows && last % self.mcu_height == self.mcu_height - 1);
        }
        if r0 == 0 && r1 + 1 == self.mcu_rows {
            return None;
        }
        let data = &bytes[self.data_at..];
        let segments = self.segments_per_row * self.mcu_rows as usize;
        // Segment k is data[starts[k]..ends[k]]; the markers must be RST0..7 in turn.
        let (mut starts, mut ends) = (Vec::with_capacity(segments), Vec::with_capacity(segments));
        starts.push(0);
        for i in memchr::memchr_iter(0xFF, data) {
            match *data.get(i + 1)? {
                0x00 | 0xFF => {}
                m @ 0xD0..=0xD7 => {
                    if usize::from(m - 0xD0) != ends.len() % 8 {
                        return None;
                    }
                    ends.push(i);
                    starts.push(i + 2);
                }
                _ => {
                    ends.push(i);
                    break;
                }
            }
        }
        if ends.len() != segments {
            return None;
        }
        let (s0, s1) = (r0 as usize * self.segments_per_row, (r1 as usize + 1) * self.segments_per_row);
        let body: usize = (s0..s1).map(|k| ends[k] - starts[k] + 2).sum();
        let mut out = Vec::with_capacity(self.data_at + body + 2);
        let top = r0 * self.mcu_height;
        let rows = self.height.min((r1 + 1) * self.mcu_height) - top;
        out.extend_from_slice(&bytes[..self.height_at]);
        out.extend_from_slice(&(rows as u16).to_be_bytes());
        out.extend_from_slice(&bytes[self.height_at + 2..self.data_at]);
        for (j, k) in (s0..s1).enumerate() {
            out.extend_from_slice(&data[starts[k]..ends[k]]);
            let marker = if k + 1 < s1 { 0xD0 + (j % 8) as u8 } else { 0xD9 };
            out.extend_from_slice(&[0xFF, marker]);
        }
        Some(Cut { bytes: out, top, rows })
    }
}

/// `img` as a baseline JPEG as `alexrt pack` stores it: standard Huffman tables (jpeg-encoder
/// 0.7's optimised ones decode to garbage in zune-jpeg 0.5 at 4:2:0) and a restart marker
/// after each row of MCUs, for [`decode_rows`].
pub fn encode_jpeg(
    img: &RgbImage,
    sampling: jpeg_encoder::SamplingFactor,
    quality: u8,
) -> Result<Vec<u8>, String> {
    let (w, h) = img.dimensions();
    let (Ok(ew), Ok(eh)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(format!("{w}x{h} after resizing is past JPEG's 65535 pixels a side"));
    };
    let mut out = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
    encoder.set_sampling_factor(sampling);
    encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
    // Luma is 8 pixels a block; 4:2:0 and 4:2:2 halve chroma across, so an MCU spans 16.
    use jpeg_encoder::SamplingFactor::{R_4_2_0, R_4_2_2};
    let mcu_width = if matches!(sampling, R_4_2_0 | R_4_2_2) { 16 } else { 8 };
    encoder.set_restart_interval(u16::try_from(w.div_ceil(mcu_width)).unwrap_or(0));
    encoder
        .encode(img.as_raw(), ew, eh, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| super::folder::one_line(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::SamplingFactor::{R_4_2_0, R_4_4_4};

    /// A photograph-like image: smooth gradients, hard edges and noise in every channel, so that
    /// the chroma differs from row to row.
    fn textured(w: u32, h: u32) -> RgbImage {
        let mut state = 0x2545F491u32;
        RgbImage::from_fn(w, h, |x, y| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let n = (state % 48) as u8;
            let edge = if (x / 7 + y / 11) % 2 == 0 { 90 } else { 0 };
            image::Rgb([
                (x * 3 % 200) as u8 + n,
                (y * 5 % 160) as u8 + edge,
                ((x + 2 * y) % 190) as u8 + n / 2,
            ])
        })
    }

    fn rows_of(img: &RgbImage, first: u32, last: u32) -> &[u8] {
        let row = img.width() as usize * 3;
        &img.as_raw()[first as usize * row..(last as usize + 1) * row]
    }

    #[test]
    fn a_band_holds_the_whole_decodes_pixels_for_every_range_of_rows() {
        for (w, h, sampling) in [(40, 72, R_4_2_0), (37, 53, R_4_2_0), (24, 40, R_4_4_4)] {
            let bytes = encode_jpeg(&textured(w, h), sampling, 90).unwrap();
            let whole = super::super::decode::decode(&bytes).unwrap();
            let mut banded = 0;
            for first in 0..h {
                for last in first..h {
                    let band = decode_rows(&bytes, |bw, bh| {
                        assert_eq!((bw, bh), (w, h));
                        Some((first, last))
                    })
                    .unwrap();
                    assert_eq!(band.height, h);
                    let (top, got) = (band.top, &band.image);
                    assert!(top <= first && last < top + got.height(), "{w}x{h}: rows {first}..={last}");
                    assert_eq!(
                        rows_of(got, first - top, last - top),
                        rows_of(&whole, first, last),
                        "{w}x{h} {sampling:?}: rows {first}..={last} from the band at {top}"
                    );
                    banded += usize::from(got.height() < h);
                }
            }
            assert!(banded > (h * h / 4) as usize, "{w}x{h}: most ranges decode a band ({banded})");
        }
    }

    #[test]
    fn the_paper_crop_of_a_packed_image_decodes_fifteen_of_its_sixteen_rows() {
        let bytes = encode_jpeg(&textured(256, 256), R_4_2_0, 90).unwrap();
        let whole = super::super::decode::decode(&bytes).unwrap();
        let mut rows = 0;
        for first in 0..=29 {
            let band = decode_rows(&bytes, |_, _| Some((first, first + 226))).unwrap();
            assert_eq!(
                rows_of(&band.image, first - band.top, first + 226 - band.top),
                rows_of(&whole, first, first + 226)
            );
            rows += band.image.height();
        }
        // 15 MCU rows of 16 hold a crop, 16 for the crops at 14, 15 (and 13, 29 for chroma).
        assert!(rows <= 30 * 243, "{} rows decoded for a crop on average", rows / 30);
    }

    #[test]
    fn other_jpegs_and_damaged_markers_decode_whole() {
        let img = textured(48, 64);
        let mut plain = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90).encode_image(&img).unwrap();
        let packed = encode_jpeg(&img, R_4_2_0, 90).unwrap();
        // RST1 where RST2 belongs: the markers are not where they should be.
        let mut renumbered = packed.clone();
        let at = renumbered.windows(2).position(|p| p == [0xFF, 0xD2]).unwrap();
        renumbered[at + 1] = 0xD1;
        for (what, bytes) in [("no restart markers", &plain), ("a misnumbered marker", &renumbered)] {
            let band = decode_rows(bytes, |_, _| Some((20, 30))).unwrap();
            assert_eq!((band.top, band.image.height(), band.height), (0, 64, 64), "{what}");
        }
        let band = decode_rows(&packed, |_, _| None).unwrap();
        assert_eq!((band.top, band.image.height()), (0, 64), "no rows named");
        assert_eq!(decode_rows(&packed, |_, _| Some((20, 30))).unwrap().image.height(), 16);
        assert!(decode_rows(&packed[..40], |_, _| Some((0, 10))).is_err());
    }
}
