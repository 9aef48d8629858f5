//! Stored image bytes to RGB pixels, for the folder and shard loaders and for packing alike (the
//! same bytes give the same pixels whichever holds them).
//!
//! A colour JPEG goes straight to zune-jpeg, with none of the format sniffing, header re-parsing
//! and copy of the input that the `image` crate's generic path makes; anything else (grey or
//! CMYK JPEGs, PNG, ...) goes through the `image` crate.
//!
//! Decoding large JPEGs at 1/2, 1/4 or 1/8 scale in the inverse DCT (libjpeg's `scale_denom`) was
//! tried with jpeg-decoder, the one pure-Rust decoder that offers it, and left out: on 250
//! camera-sized JPEGs (long side 1600-2000, mostly decoded at 1/4) it took 6.4 ms of CPU per image
//! against 6.0 ms for zune-jpeg's full decode and the resize, its Huffman decoding being the
//! slower and each image starting threads of its own (`benches/results/decode-2026-12-05-vm.md`).
//! zune-jpeg 0.5.15, the newest release, has neither scaled nor region decoding (both are open
//! pull requests upstream, etemesi254/zune-image#412 and #414).

use image::RgbImage;
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

use super::folder::one_line;

/// Decodes `bytes` as RGB. The error is the decoder's message on one line.
pub fn decode(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        if let Some(img) = decode_jpeg(bytes)? {
            return Ok(img);
        }
    }
    let img = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| one_line(&e))?
        .decode()
        .map_err(|e| one_line(&e))?;
    Ok(img.into_rgb8())
}

/// A colour JPEG's pixels, or `None` for a JPEG the generic path should take.
fn decode_jpeg(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(|e| one_line(&e))?;
    let (Some((w, h)), Some(space)) = (decoder.dimensions(), decoder.input_colorspace()) else {
        return Ok(None);
    };
    if !matches!(space, ColorSpace::YCbCr | ColorSpace::RGB) {
        return Ok(None);
    }
    let pixels = decoder.decode().map_err(|e| one_line(&e))?;
    Ok(RgbImage::from_raw(w as u32, h as u32, pixels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, ((x + y) % 256) as u8])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90).encode_image(&img).unwrap();
        out
    }

    #[test]
    fn a_jpeg_decodes_to_the_pixels_the_image_crate_gives() {
        let bytes = jpeg(67, 41);
        let ours = decode(&bytes).unwrap();
        let theirs = image::load_from_memory(&bytes).unwrap().into_rgb8();
        assert_eq!(ours.dimensions(), (67, 41));
        assert_eq!(ours.as_raw(), theirs.as_raw());
    }

    #[test]
    fn a_grey_jpeg_takes_the_generic_path_to_rgb() {
        let grey = image::GrayImage::from_fn(9, 7, |x, y| image::Luma([(x * 20 + y) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 95).encode_image(&grey).unwrap();
        let rgb = decode(&bytes).unwrap();
        assert_eq!(rgb.dimensions(), (9, 7));
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn other_formats_and_damaged_bytes() {
        let mut png = Vec::new();
        image::DynamicImage::ImageRgb8(RgbImage::new(5, 3))
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert_eq!(decode(&png).unwrap().dimensions(), (5, 3));
        let mut cut = jpeg(64, 64);
        cut.truncate(40);
        assert!(decode(&cut).is_err());
        assert!(decode(b"not an image").is_err());
        assert!(!decode(b"\xFF\xD8 broken").unwrap_err().contains('\n'));
    }
}
