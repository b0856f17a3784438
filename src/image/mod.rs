//! The image engines: ImageMagick for every format, the lossless transform
//! for the JPEGs it reproduces exactly, the transform (resize, format) for
//! runs that ask for one, and the libjpeg memory manager that
//! lets a conversion thread keep its blocks. Each takes and returns bytes in
//! memory and knows nothing of rows or the run (ImageMagick's pixel cache may
//! spill to the directory it is given, `magick::set_memory`); the convert
//! stage (`pipeline::convert`) decides which engine takes an image.

pub mod jmem;
pub mod lossless;
pub mod magick;
mod tj;
pub mod transform;
