package legacy

// The outer container is many small tar archives, one per member, one
// after the other, as in format 4: package archive's
// OuterReader reads it.

const blockSize = 512
