//! Image hashing for Redline (PDQ, the img_hash family, exact hashes). Work in progress.
