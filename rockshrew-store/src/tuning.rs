//! Every RocksDB setting of the store, in one place: [`Tuning`] holds the ones an operator may
//! change, and the functions below derive the full options from it. None of them changes what
//! the store holds or answers.

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType,
    DataBlockIndexType, Options, SliceTransform,
};

use crate::Family;

/// The store's adjustable settings. Each field states its default ([`Tuning::default`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuning {
    /// SST files RocksDB keeps open at once (its table cache; files beyond it are opened when
    /// read). Default 1,024. The daemon sets it from its file-descriptor budget.
    pub max_open_files: u32,
    /// The LRU block cache shared by every column family, in bytes. Default 256 MiB.
    pub block_cache_bytes: usize,
    /// Bound on the memtables of all column families together, in bytes: past it the largest
    /// is flushed. Default 256 MiB.
    pub write_buffer_total_bytes: usize,
    /// Target size of the SST files of the history and latest-value families, in bytes.
    /// Default 256 MiB: a 1 TB database is about 4,000 files.
    pub target_file_bytes: u64,
    /// Memtable size of the history and latest-value families in [`IngestMode::Bulk`], in
    /// bytes (in [`IngestMode::Tip`]: 64 MiB). Default 128 MiB: the two then fill
    /// `write_buffer_total_bytes` together.
    pub bulk_write_buffer_bytes: usize,
    /// L0 files that start a compaction into L1 in [`IngestMode::Bulk`] (RocksDB's default, used
    /// at the tip: 4). Default 8: fewer, larger compactions while every block is new data.
    pub bulk_l0_compaction_trigger: u32,
    /// Compaction debt past which RocksDB slows writes down in [`IngestMode::Bulk`], in bytes
    /// (at the tip: RocksDB's 64 GiB); writes stop at four times it. Default 64 GiB: the debt
    /// stays bounded, and the sync waits for compaction rather than letting reads degrade.
    pub bulk_soft_debt_bytes: u64,
    /// Whether every commit (a block, a rollback) fsyncs the write-ahead log before it returns:
    /// then no committed block is lost to a power cut or a kernel crash, at the price of one
    /// fsync a block. Default false: a power cut loses the blocks committed since RocksDB last
    /// synced the log (it does at each memtable switch), and they are indexed again.
    pub sync_commits: bool,
}

/// How the store is being written: the daemon picks the mode from how far it is behind the
/// node, and switches at run time ([`crate::RocksStore::set_ingest_mode`]). Both write the same
/// batches, with the same crash consistency; only memtable and compaction settings differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IngestMode {
    /// At or near the node's tip: RocksDB's settings for mixed reads and writes (the default).
    #[default]
    Tip,
    /// Far behind: larger memtables and fewer, larger L0 compactions.
    Bulk,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            max_open_files: 1024,
            block_cache_bytes: 256 << 20,
            write_buffer_total_bytes: 256 << 20,
            target_file_bytes: 256 << 20,
            bulk_write_buffer_bytes: 128 << 20,
            bulk_l0_compaction_trigger: 8,
            bulk_soft_debt_bytes: 64 << 30,
            sync_commits: false,
        }
    }
}

/// Size of one memtable of a column family.
const WRITE_BUFFER_BYTES: usize = 64 << 20;

/// RocksDB options for the whole database.
pub fn db_options(tuning: &Tuning) -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as i32;
    o.increase_parallelism(cores);
    o.set_max_background_jobs(cores.max(2));
    o.set_bytes_per_sync(1 << 20);
    o.set_keep_log_file_num(5);
    o.set_max_open_files(i32::try_from(tuning.max_open_files).unwrap_or(i32::MAX));
    o.set_db_write_buffer_size(tuning.write_buffer_total_bytes);
    // The small families (blocks, touched, meta) would otherwise rarely fill a memtable, and
    // every WAL file since their last flush would be kept: gigabytes on a long sync.
    o.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    o
}

/// WAL kept at most before the families holding it back are flushed.
const MAX_TOTAL_WAL_BYTES: u64 = 512 << 20;

/// Block-based table options: the shared LRU block cache, bloom filters, 16 KiB blocks.
///
/// Index and filter blocks are partitioned (4 KiB partitions under a small top level, kept
/// pinned): a 256 MiB SST file has a ~3 MB filter, and without partitions a read whose filter
/// was evicted from the cache re-reads and checksums all of it (measured: most of a block's
/// time once the filters outgrew the cache, at 0.8 GB). They are cached with high priority.
fn table_options(cache: &Cache) -> BlockBasedOptions {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_bloom_filter(10.0, false);
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4 << 10);
    table.set_cache_index_and_filter_blocks(true);
    table.set_cache_index_and_filter_blocks_with_high_priority(true);
    table.set_pin_top_level_index_and_filter(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_block_size(16 << 10);
    table
}

/// RocksDB options of one column family: `table_options`, LZ4, 64 MiB write buffers.
pub fn cf_options(cache: &Cache) -> Options {
    let table = table_options(cache);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_compression_type(DBCompressionType::Lz4);
    o.set_write_buffer_size(WRITE_BUFFER_BYTES);
    o.set_max_write_buffer_number(3);
    o
}

/// Options of a large family: [`cf_options`] with SST files of `target_file_bytes`. Level 1
/// keeps RocksDB's 256 MiB (the size of four memtables): every L0 -> L1 compaction rewrites the
/// whole of level 1, and a level 1 of eight 256 MiB files measured 4.6x write amplification
/// and half the speed at 6 GB.
fn large_cf_options(cache: &Cache, tuning: &Tuning) -> Options {
    let mut o = cf_options(cache);
    o.set_target_file_size_base(tuning.target_file_bytes);
    o
}

/// The options of a `history` column family: those of `large_cf_options`, plus a prefix
/// extractor (a history key without its 4-byte height: every entry of one indexer key shares
/// it) whose bloom filters let a read skip every SST file that holds no entry of its key.
/// Without them a read seeks into every level, and reads slow down as the database grows.
pub fn history_cf_options(cache: &Cache, tuning: &Tuning) -> Options {
    let mut o = large_cf_options(cache, tuning);
    let mut table = table_options(cache);
    table.set_whole_key_filtering(false);
    o.set_block_based_table_factory(&table);
    o.set_prefix_extractor(SliceTransform::create(
        "metashrew.history-key",
        |key| &key[..key.len().saturating_sub(4)],
        Some(|key| key.len() >= 4),
    ));
    o.set_memtable_prefix_bloom_ratio(0.05);
    o
}

/// Data block size of the latest-value family: a read that misses the block cache copies one
/// block from the page cache, and its keys (hashes) do not compress.
const LATEST_BLOCK_BYTES: usize = 4 << 10;

/// The options of the latest-value family: those of `large_cf_options` with whole-key bloom
/// filters (the default of `table_options`) and a memtable bloom filter, so that a point
/// lookup of a key that was never written touches no data block.
pub fn latest_cf_options(cache: &Cache, tuning: &Tuning) -> Options {
    let mut o = large_cf_options(cache, tuning);
    let mut table = table_options(cache);
    table.set_block_size(LATEST_BLOCK_BYTES);
    table.set_data_block_index_type(DataBlockIndexType::BinaryAndHash);
    o.set_block_based_table_factory(&table);
    o.set_compression_type(DBCompressionType::None);
    o.set_memtable_whole_key_filtering(true);
    o.set_memtable_prefix_bloom_ratio(0.05);
    o
}

/// The mutable options of the history and latest-value families in `mode`.
pub(crate) fn mode_options(tuning: &Tuning, mode: IngestMode) -> Vec<(&'static str, String)> {
    let (buffer, l0, soft) = match mode {
        IngestMode::Tip => (WRITE_BUFFER_BYTES, 4, 64u64 << 30),
        IngestMode::Bulk => (
            tuning.bulk_write_buffer_bytes,
            tuning.bulk_l0_compaction_trigger,
            tuning.bulk_soft_debt_bytes,
        ),
    };
    vec![
        ("write_buffer_size", buffer.to_string()),
        ("level0_file_num_compaction_trigger", l0.to_string()),
        ("level0_slowdown_writes_trigger", (l0 * 5).to_string()),
        ("level0_stop_writes_trigger", (l0 * 9).to_string()),
        ("soft_pending_compaction_bytes_limit", soft.to_string()),
        (
            "hard_pending_compaction_bytes_limit",
            soft.saturating_mul(4).to_string(),
        ),
    ]
}

/// The descriptors of the column families `names`, with their options and one block cache.
pub(crate) fn descriptors<'a>(
    names: &'a [String],
    tuning: &'a Tuning,
) -> impl Iterator<Item = ColumnFamilyDescriptor> + 'a {
    let cache = Cache::new_lru_cache(tuning.block_cache_bytes);
    names.iter().map(move |n| {
        let options = match Family::of_name(n) {
            Some(Family::History) => history_cf_options(&cache, tuning),
            Some(Family::Latest) => latest_cf_options(&cache, tuning),
            _ => cf_options(&cache),
        };
        ColumnFamilyDescriptor::new(n, options)
    })
}
