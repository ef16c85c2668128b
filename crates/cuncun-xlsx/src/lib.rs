//! Excel (.xlsx) import and export for the lists county staff keep: a downloadable template, an
//! export in the same layout, a reader that checks every row, and a downloadable error report.
//!
//! # Layout of every sheet this crate writes
//!
//! * **One header row** (row 1). Each header cell reads `中文名 (key)`, e.g. `区划代码 (region_code)`;
//!   required columns start with `*` (the usual mark on Chinese government forms) and are dark red.
//!   One row keeps the sheet sortable and filterable in Excel and WPS, and the machine key keeps
//!   the column recognisable when someone edits the Chinese label.
//! * The header is bold and frozen; data starts in row 2. Templates put one example row there in
//!   grey italic. **The example row is data**: it imports like any other row, so staff overwrite
//!   or delete it (the 说明 sheet says so).
//! * Templates have a second sheet, 说明, listing every column: label, key, required, what it
//!   holds, allowed values (enumerations list each Chinese label with its key) and the example.
//!   Enumeration columns also get an in-cell dropdown of the Chinese labels (a warning, not a hard
//!   stop, so typing the key still works).
//!
//! # What the reader accepts
//!
//! [`read_rows`] picks the sheet whose header matches the most known columns (so the 说明 sheet,
//! an error-report list or an added notes sheet never get in the way) and finds the header within
//! the first 20 rows. A header cell may be the key, the Chinese label, the English name, or
//! `label (key)`; whitespace, full-width parentheses and `*` marks are ignored. Missing required
//! columns, unknown columns and duplicated columns are all reported by name, at once. Fully empty
//! rows are skipped; row numbers are the ones Excel shows (1-based, header included).
//!
//! # Codes must be text cells
//!
//! **Region codes and device codes must be typed into text cells.** The template formats code
//! columns as text (`@`), but a pasted or retyped cell can turn into a number. Excel keeps only
//! 15 significant digits of a number, so a 12-digit region code stored as a number (or shown as
//! `5.00236100201E+11`) is recovered exactly, but a 23-digit device code stored as a number has
//! already lost its last digits inside Excel: the reader refuses it with a message telling the
//! user to format the column as text and type the code again. Leading zeros are likewise lost
//! in number cells (no code of ours starts with 0, so this is only a concern for future sheets).
//!
//! # Errors
//!
//! Problems with the file as a whole are a [`SheetError`]; problems with a cell are a
//! [`RowError`] with the row, column key, column label, the cell's value and a message in Chinese
//! and English. Concrete sheets (see [`resources`]) validate every row and return a
//! [`ParseOutcome`] holding the valid rows and every error; the caller adds its own database
//! checks with [`ParseOutcome::add_error`] and hands the lot to [`error_report`].

mod package;
mod read;
mod report;
pub mod households;
pub mod resources;
mod sheet;
mod values;

pub use package::{MAX_CELL_CHARS, MAX_PARTS, MAX_SHARED_STRINGS, MAX_SHEET_COLUMNS, MAX_SHEET_ROWS, MAX_UNZIPPED_BYTES};
pub use read::{MAX_CELLS, MAX_DATA_ROWS, MAX_INPUT_BYTES, RawRow, read_rows};
pub use report::{Message, ParseOutcome, RowCheck, RowError, SheetError, error_report, parse_with};
pub use sheet::{Cell, Column, ColumnKind, template, write_rows};
pub use values::normalise_date;
