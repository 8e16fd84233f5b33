//! What the opcode says about a command, since a TCMU entry does not: its CDB length and
//! whether its buffers carry data-out.

/// `VARIABLE_LENGTH_CMD`: the CDB length is 8 plus byte 7.
const VARIABLE_LENGTH_CMD: u8 = 0x7f;

/// CDB length by group code (opcode bits 7-5), as the kernel's `scsi_command_size_tbl`.
const COMMAND_SIZE: [usize; 8] = [6, 10, 10, 12, 16, 12, 10, 10];

/// The CDB length the kernel copied for `opcode` (`scsi_command_size`): by group code, or 8
/// plus byte 7 for a variable-length CDB (`byte7` is `None` if the entry ends before it).
pub fn cdb_len(opcode: u8, byte7: Option<u8>) -> usize {
    match (opcode, byte7) {
        (VARIABLE_LENGTH_CMD, Some(n)) => 8 + usize::from(n),
        _ => COMMAND_SIZE[usize::from(opcode >> 5)],
    }
}

/// Whether the command's buffers carry data-out (TCMU's entry does not say; the opcode does).
/// Anything else is treated as data-in: a misjudged opcode is answered by the device with
/// CHECK CONDITION and no data either way.
pub fn is_data_out(opcode: u8) -> bool {
    matches!(
        opcode,
        0x0a // WRITE(6), and SEND(6) of a processor device
        | 0x2a // WRITE(10)
        | 0xaa // WRITE(12)
        | 0x8a // WRITE(16)
        | 0x2e | 0xae | 0x8e // WRITE AND VERIFY(10/12/16)
        | 0x41 | 0x93 // WRITE SAME(10/16)
        | 0x89 // COMPARE AND WRITE
        | 0x15 | 0x55 // MODE SELECT(6/10)
        | 0x1d // SEND DIAGNOSTIC
        | 0x3b // WRITE BUFFER
        | 0x42 // UNMAP
        | 0x4c // LOG SELECT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdb_lengths_follow_the_group_code() {
        let cases = [
            (0x00, 6),
            (0x12, 6),
            (0x28, 10),
            (0x5f, 10),
            (0x60, 12),
            (0x88, 16),
            (0xa0, 12),
            (0xc0, 10),
            (0xff, 10),
        ];
        for (op, len) in cases {
            assert_eq!(cdb_len(op, None), len, "{op:#x}");
        }
        assert_eq!(cdb_len(0x7f, Some(24)), 32);
        assert_eq!(cdb_len(0x7f, None), 12);
    }

    #[test]
    fn data_out_opcodes() {
        for op in [0x0a, 0x2a, 0xaa, 0x8a] {
            assert!(is_data_out(op), "{op:#x}");
        }
        for op in [0x00, 0x08, 0x12, 0x28, 0x88, 0xa0, 0x03] {
            assert!(!is_data_out(op), "{op:#x}");
        }
    }
}
