import Models
import GGUF
print("hi")
