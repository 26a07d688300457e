//! Exact Hamming range search. Work in progress.
