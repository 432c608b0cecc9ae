//! The memory source against a stand-in of /proc, /dev and /sys in a directory: a `kcore` written
//! as the kernel writes it (an ELF core whose program headers carry physical addresses), an
//! `iomem`, and the small files the record is made of.

// Test arithmetic on small, known values.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::*;
use crate::pipeline::{Input, PipelineConfig};
use crate::sink::DiscardSink;

/// RAM as the fake `iomem` lists it.
const RAM: [(u64, u64); 2] = [(0x1000, 0x9fc00), (0x10_0000, 0x20_0000)];
const BANNER: &str =
    "Linux version 6.1.0-28-amd64 (debian-kernel@lists.debian.org) #1 SMP Debian 6.1.119-1";

/// The byte at physical `address` in the fake machine.
fn byte_at(address: u64) -> u8 {
    (address % 251) as u8
}

/// One `PT_LOAD` program header: `(p_paddr, p_filesz, p_offset)`.
fn phdr(paddr: u64, size: u64, offset: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(56);
    p.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    p.extend_from_slice(&7u32.to_le_bytes()); // RWX
    p.extend_from_slice(&offset.to_le_bytes());
    p.extend_from_slice(&(0xffff_8880_0000_0000u64.wrapping_add(paddr)).to_le_bytes()); // vaddr
    p.extend_from_slice(&paddr.to_le_bytes());
    p.extend_from_slice(&size.to_le_bytes()); // filesz
    p.extend_from_slice(&size.to_le_bytes()); // memsz
    p.extend_from_slice(&4096u64.to_le_bytes());
    p
}

/// An ELF64 core file with `segments` (`(p_paddr, size)`, `u64::MAX` for a segment of no physical
/// address); each segment's bytes are the fake machine's memory at its address.
fn kcore(segments: &[(u64, u64)]) -> Vec<u8> {
    let phoff = 64u64;
    let mut offset = 0x1000u64;
    let mut headers = Vec::new();
    let mut placed = Vec::new();
    for &(paddr, size) in segments {
        headers.extend(phdr(paddr, size, offset));
        placed.push((paddr, size, offset));
        offset += size;
    }
    let mut file = vec![0u8; offset as usize];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // ELFCLASS64
    file[5] = 1; // little-endian
    file[6] = 1; // EV_CURRENT
    file[16..18].copy_from_slice(&4u16.to_le_bytes()); // ET_CORE
    file[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    file[20..24].copy_from_slice(&1u32.to_le_bytes());
    file[32..40].copy_from_slice(&phoff.to_le_bytes());
    file[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    file[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    file[56..58].copy_from_slice(&(segments.len() as u16).to_le_bytes());
    file[64..64 + headers.len()].copy_from_slice(&headers);
    for (paddr, size, offset) in placed {
        if paddr == u64::MAX {
            continue;
        }
        for i in 0..size {
            file[(offset + i) as usize] = byte_at(paddr + i);
        }
    }
    file
}

/// A machine: `iomem` listing `RAM`, the small files, root's capabilities, and what `setup` adds.
fn machine(setup: impl FnOnce(&Path)) -> (tempfile::TempDir, SystemRoots) {
    let dir = tempfile::tempdir().unwrap();
    let roots = SystemRoots {
        proc: dir.path().join("proc"),
        dev: dir.path().join("dev"),
        sys: dir.path().join("sys"),
    };
    for d in [&roots.proc, &roots.dev, &roots.sys] {
        fs::create_dir_all(d).unwrap();
    }
    fs::create_dir_all(roots.proc.join("self")).unwrap();
    fs::create_dir_all(roots.proc.join("sys/kernel/random")).unwrap();
    fs::write(
        roots.proc.join("self/status"),
        "Name:\tx\nCapEff:\t000001ffffffffff\n",
    )
    .unwrap();
    let iomem: String = RAM
        .iter()
        .map(|(s, e)| {
            format!(
                "{s:08x}-{:08x} : System RAM\n  {s:08x}-{s:08x} : Kernel code\n",
                e - 1
            )
        })
        .collect();
    fs::write(
        roots.proc.join("iomem"),
        format!("00000000-00000fff : Reserved\n{iomem}"),
    )
    .unwrap();
    fs::write(roots.proc.join("version"), format!("{BANNER}\n")).unwrap();
    fs::write(roots.proc.join("sys/kernel/osrelease"), "6.1.0-28-amd64\n").unwrap();
    fs::write(
        roots.proc.join("sys/kernel/random/boot_id"),
        "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    )
    .unwrap();
    setup(dir.path());
    (dir, roots)
}

/// The usual kcore: the low range whole, the high range mapped up to 0x1c0000 (the rest
/// unmapped), the kernel text inside it, and a vmalloc segment without a physical address.
fn usual_kcore(root: &Path) {
    let core = kcore(&[
        (0, 0xa_0000),
        (0x10_0000, 0xc_0000),
        (0x11_0000, 0x1000),
        (u64::MAX, 0x2000),
    ]);
    fs::write(root.join("proc/kcore"), core).unwrap();
}

/// A physical-address device file holding the fake machine's memory up to `end`.
fn physical(root: &Path, name: &str, end: u64) {
    let bytes: Vec<u8> = (0..end).map(byte_at).collect();
    fs::write(root.join("dev").join(name), bytes).unwrap();
}

fn failure(result: Result<Memory>) -> (MemoryFailure, String) {
    match result {
        Err(Error::Memory { failure, message }) => (failure, message),
        other => panic!("expected a memory refusal, got {other:?}"),
    }
}

fn image_of(memory: &Memory) -> (Vec<u8>, Vec<crate::ranges::BadRange>) {
    let mut buf = vec![0u8; memory.size() as usize];
    // In uneven slices, as the pipeline's chunks cut it.
    let mut bad = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let step = 70_001.min(buf.len() - at);
        bad.extend(feed::fill(memory, at as u64, &mut buf[at..at + step]));
        at += step;
    }
    let mut bad = crate::ranges::merge(bad);
    memory.renumber(&mut bad);
    (buf, bad)
}

// Issue 22: through /proc/kcore, each System RAM range is one LiME header and its bytes, read at
// the physical address its program header gives; memory no segment maps is zeros, recorded.
#[test]
fn kcore_is_imaged_as_lime_with_unmapped_memory_recorded() {
    let (_dir, roots) = machine(usual_kcore);
    let memory = Memory::open_at(&roots, None).unwrap();
    assert_eq!(memory.reader(), MemoryReader::Kcore);
    assert_eq!(memory.uri(), "memory://kcore");
    let data: u64 = RAM.iter().map(|(s, e)| e - s).sum();
    assert_eq!(memory.size(), data + 2 * lime::HEADER_LEN);
    let (image, bad) = image_of(&memory);
    let mut walker = lime::LimeWalker::new();
    walker.feed(&image);
    assert_eq!(walker.finish().unwrap(), RAM.to_vec());
    let second = (0x9fc00 - 0x1000) + 2 * 32;
    for (range, data_at) in [(RAM[0], 32u64), (RAM[1], second as u64)] {
        let mapped_end = range.1.min(0x1c_0000);
        for address in (range.0..mapped_end).step_by(4093) {
            assert_eq!(
                image[(data_at + address - range.0) as usize],
                byte_at(address),
                "{address:#x}"
            );
        }
    }
    let hole = second as u64 + (0x1c_0000 - 0x10_0000);
    assert!(image[hole as usize..].iter().all(|&b| b == 0));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!((bad[0].offset, bad[0].length), (hole, 0x4_0000));
    assert_eq!(
        (bad[0].first_sector, bad[0].sector_count, bad[0].sector_size),
        (0x1c0, 0x40, 4096)
    );
    assert_eq!(bad[0].errno, libc::ENXIO);
}

#[test]
fn the_record_says_what_an_examiner_needs() {
    let (_dir, roots) = machine(usual_kcore);
    let record = Memory::open_at(&roots, None).unwrap().record();
    assert_eq!(record.reader, MemoryReader::Kcore);
    assert_eq!(record.banner, BANNER);
    assert_eq!(record.kernel_release, "6.1.0-28-amd64");
    assert_eq!(
        record.boot_id.as_deref(),
        Some("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    );
    assert_eq!(record.consistency, "smear");
    assert!(!record.machine.is_empty());
    let offsets: Vec<_> = record
        .ranges
        .iter()
        .map(|r| (r.start, r.end, r.image_offset, r.bytes_read))
        .collect();
    // Before the run, every range counts as read whole.
    assert_eq!(
        offsets,
        [
            (0x1000, 0x9fc00, 0, 0x9ec00),
            (0x10_0000, 0x20_0000, 0x9ec00 + 32, 0x10_0000)
        ]
    );
    record.check(0x9ec00 + 0x10_0000 + 64).unwrap();
}

// The whole run: hashes of exactly the LiME bytes, the unmapped memory in bad ranges, the record's
// bytes_read, and a manifest that passes its own validation.
#[test]
fn a_run_hashes_the_image_and_its_manifest_validates() {
    let (_dir, roots) = machine(usual_kcore);
    let memory = Memory::open_at(&roots, None).unwrap();
    let config = PipelineConfig {
        chunk_size: 64 << 10,
        ..PipelineConfig::default()
    };
    let never = AtomicBool::new(false);
    let outcome = crate::run(
        Input::Memory(&memory),
        Box::<DiscardSink>::default(),
        &config,
        &|_| {},
        &never,
    )
    .unwrap();
    let (image, bad) = image_of(&memory);
    let sha = {
        let mut h = crate::Hasher::new(crate::HashAlgorithm::Sha256);
        h.update(&image);
        h.finish_hex()
    };
    assert_eq!(outcome.hashes[&crate::HashAlgorithm::Sha256], sha);
    assert_eq!(outcome.bad_ranges, bad);
    let effective = config.for_input(Input::Memory(&memory));
    assert_eq!(effective.queue_depth, PipelineConfig::MEMORY_QUEUE_DEPTH);
    let context = crate::Context {
        tool: crate::ToolInfo {
            name: "t".into(),
            version: "1".into(),
            git_revision: "-".into(),
        },
        case: crate::CaseInfo {
            incident_id: None,
            evidence_name: "m".into(),
            source_volume_id: None,
            examiner: None,
        },
        host: crate::HostInfo {
            hostname: "h".into(),
            instance_id: None,
        },
        image_file_name: "m.mem.lime".into(),
        peak_rss_bytes: None,
        custody: crate::custody::test_facts(&crate::ToolInfo {
            name: "t".into(),
            version: "1".into(),
            git_revision: "-".into(),
        }),
    };
    let manifest = crate::Manifest::new(
        context,
        crate::SourceRecord::of_memory(&memory),
        &effective,
        outcome,
    );
    let record = manifest.source.memory.as_ref().unwrap();
    assert_eq!(record.ranges[0].bytes_read, 0x9fc00 - 0x1000);
    assert_eq!(record.ranges[1].bytes_read, 0xc_0000);
    assert_eq!(
        manifest.acquisition.status,
        crate::Status::CompletedWithErrors
    );
    let text = manifest.to_json();
    let back = crate::Manifest::from_json(&text, Path::new("m.manifest.json")).unwrap();
    assert_eq!(back, manifest);
    assert!(text.contains("\"kind\": \"memory\""), "{text}");
}

#[test]
fn without_kcore_dev_crash_then_dev_mem_are_read_by_physical_address() {
    let (_dir, roots) = machine(|root| physical(root, "mem", 0x20_0000));
    let memory = Memory::open_at(&roots, None).unwrap();
    assert_eq!(memory.reader(), MemoryReader::Mem);
    let passed: Vec<_> = memory
        .passed_over()
        .iter()
        .map(|(r, why)| (*r, why.as_str()))
        .collect();
    assert_eq!(
        passed,
        [
            (MemoryReader::Kcore, "absent"),
            (MemoryReader::Crash, "absent")
        ]
    );
    let (image, bad) = image_of(&memory);
    assert!(bad.is_empty(), "{bad:?}");
    assert_eq!(image[32 + 0x5000], byte_at(0x6000));

    let (_dir, roots) = machine(|root| {
        physical(root, "crash", 0x20_0000);
        physical(root, "mem", 0x20_0000);
    });
    assert_eq!(
        Memory::open_at(&roots, None).unwrap().reader(),
        MemoryReader::Crash
    );
    assert_eq!(
        Memory::open_at(&roots, Some(MemoryReader::Mem))
            .unwrap()
            .reader(),
        MemoryReader::Mem
    );
}

// Memory that fails to read is read again page by page; the pages that still fail are zeros, recorded.
#[test]
fn pages_that_do_not_read_are_zero_filled_page_by_page() {
    // The device ends 0x800 bytes into page 0x1e1: that page and every one after it do not read
    // (a page is read whole or not at all).
    let (_dir, roots) = machine(|root| physical(root, "mem", 0x1e_1800));
    let memory = Memory::open_at(&roots, None).unwrap();
    let (image, bad) = image_of(&memory);
    let data_at = (0x9fc00 - 0x1000) + 64u64;
    assert_eq!(image[(data_at + 0xe_0fff) as usize], byte_at(0x1e_0fff));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0].offset, bad[0].length),
        (data_at + 0xe_1000, 0x1f000)
    );
    assert_eq!((bad[0].first_sector, bad[0].sector_count), (0x1e1, 0x1f));
    assert_eq!(bad[0].errno, libc::ENODATA);
    assert!(
        image[(data_at + 0xe_1000) as usize..]
            .iter()
            .all(|&b| b == 0)
    );
}

// Issue 22: each refusal its own failure (exit code), with the reasons of every reader tried.
#[test]
fn what_cannot_give_an_image_is_refused_with_its_own_failure() {
    let (_dir, roots) = machine(usual_kcore);
    fs::write(
        roots.proc.join("self/status"),
        "CapEff:\t000001fffffdffff\n",
    )
    .unwrap();
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::NotPermitted);
    assert!(message.contains("CAP_SYS_RAWIO"), "{message}");

    let lock = |mode: &str| {
        let (dir, roots) = machine(|root| {
            usual_kcore(root);
            physical(root, "mem", 0x20_0000);
        });
        fs::create_dir_all(roots.sys.join("kernel/security")).unwrap();
        fs::write(roots.sys.join("kernel/security/lockdown"), mode).unwrap();
        (dir, roots)
    };
    let (_dir, roots) = lock("none integrity [confidentiality]\n");
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Lockdown);
    assert!(message.contains("confidentiality"), "{message}");
    // integrity closes /dev/mem only: kcore still gives the image; without kcore it is lockdown.
    let (_dir, roots) = lock("none [integrity] confidentiality\n");
    assert_eq!(
        Memory::open_at(&roots, None).unwrap().reader(),
        MemoryReader::Kcore
    );
    fs::remove_file(roots.proc.join("kcore")).unwrap();
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Lockdown);
    assert!(
        message.contains("closed by kernel lockdown (integrity)"),
        "{message}"
    );

    let (_dir, roots) = machine(|_| {});
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::NoSource);
    assert!(message.contains("kcore: absent"), "{message}");

    let (_dir, roots) = machine(|root| {
        fs::write(
            root.join("proc/kcore"),
            b"not an ELF file at all, but long enough to try reading it as one",
        )
        .unwrap()
    });
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Unreadable);
    assert!(message.contains("not an ELF core file"), "{message}");

    // /dev/mem under STRICT_DEVMEM: the first MiB reads, RAM above it does not.
    let (_dir, roots) = machine(|root| physical(root, "mem", 0x10_0000));
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Unreadable);
    assert!(
        message.contains("reading RAM at 0x100000 gave 0 of 4096 bytes"),
        "{message}"
    );

    let (_dir, roots) = machine(usual_kcore);
    fs::write(roots.proc.join("iomem"), "00000000-00000000 : System RAM\n").unwrap();
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Unreadable);
    assert!(message.contains("CAP_SYS_ADMIN"), "{message}");
}

#[test]
fn kcore_segments_choose_the_widest_mapping_and_leave_gaps_unmapped() {
    let segments = [
        kcore::Segment {
            start: 0x1000,
            end: 0x5000,
            file_offset: 100,
        },
        kcore::Segment {
            start: 0x2000,
            end: 0x3000,
            file_offset: 900,
        },
        kcore::Segment {
            start: 0x7000,
            end: 0x9000,
            file_offset: 5000,
        },
    ];
    let extents = kcore::extents((0x1800, 0x8000), &segments);
    let view: Vec<_> = extents
        .iter()
        .map(|e| (e.start, e.len, e.file_offset))
        .collect();
    assert_eq!(
        view,
        [
            (0x1800, 0x3800, Some(100 + 0x800)),
            (0x5000, 0x2000, None),
            (0x7000, 0x1000, Some(5000))
        ]
    );
    assert_eq!(
        kcore::extents((0x9000, 0xa000), &segments)[0].file_offset,
        None
    );
}

// A kcore's segments are its PT_LOAD program headers that give a physical address and hold bytes:
// the note that opens a real kcore (p_paddr 0) and empty headers would map memory to nothing.
#[test]
fn only_loaded_segments_with_an_address_and_bytes_map_memory() {
    let mut core = kcore(&[
        (0, 0x100),
        (0x1000, 0x1000),
        (0x3000, 0x1000),
        (0x5000, 0x1000),
        (0x7000, 0x1000),
    ]);
    let field = |segment: usize, at: usize| 64 + 56 * segment + at;
    core[field(0, 0)..field(0, 4)].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    core[field(2, 32)..field(2, 40)].copy_from_slice(&0u64.to_le_bytes()); // p_filesz
    core[field(3, 40)..field(3, 48)].copy_from_slice(&0u64.to_le_bytes()); // p_memsz
    let segments = kcore::segments(std::io::Cursor::new(core)).unwrap();
    let view: Vec<_> = segments.iter().map(|s| (s.start, s.end)).collect();
    assert_eq!(view, [(0x1000, 0x2000), (0x7000, 0x8000)]);
}

#[test]
fn a_device_addressed_by_physical_address_reads_a_range_in_one_extent() {
    let extent = kcore::identity_extent((0x10_0000, 0x20_0000));
    assert_eq!(
        (extent.start, extent.len, extent.file_offset),
        (0x10_0000, 0x10_0000, Some(0x10_0000))
    );
}

// Each reader's file is opened without following a symbolic link: /proc/kcore and /dev/mem are
// never links, so one is something else put in their place.
#[test]
fn a_reader_that_is_a_symbolic_link_is_not_followed() {
    let (_dir, roots) = machine(|root| {
        physical(root, "elsewhere", 0x20_0000);
        std::os::unix::fs::symlink(root.join("dev/elsewhere"), root.join("dev/mem")).unwrap();
    });
    let (why, message) = failure(Memory::open_at(&roots, None));
    assert_eq!(why, MemoryFailure::Unreadable);
    assert!(message.contains("mem: cannot open"), "{message}");
}

#[test]
fn reader_names_round_trip() {
    for reader in MemoryReader::ALL {
        assert_eq!(MemoryReader::from_name(reader.name()), Some(reader));
    }
    assert_eq!(MemoryReader::from_name("kmem"), None);
}
