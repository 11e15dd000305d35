// Package sparsetar writes and reads the inner tar stream that holds one stored file of a backup, keeping disk images sparse in both directions.
package sparsetar
